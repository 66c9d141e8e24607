package runtimes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/stratus-faas/stratus/internal/function"
)

// Names interpreters go by on PATH: the unversioned one, and the
// versioned names distributions and version managers install side by side.
var (
	pythonNames = []string{"python3", "python3.9", "python3.10", "python3.11", "python3.12", "python3.13", "python3.14"}
	nodeNames   = []string{"node", "nodejs", "node18", "node20", "node22", "node24"}
)

// pythonProbe prints what a Python interpreter is: its real executable
// (past pyenv's shell-script shims, which cost tens of milliseconds per
// start), version, installation prefixes and the boto3 beside it.
const pythonProbe = `import sys, json, site
try:
    import importlib.metadata as m
    sdk = m.version("boto3")
except Exception:
    sdk = ""
print(json.dumps({"exe": sys.executable, "version": "%d.%d.%d" % sys.version_info[:3], "prefix": sorted({sys.base_prefix, sys.prefix}), "sdk": sdk, "site": site.getsitepackages()}))`

// findInterpreters probes every interpreter name on PATH once, in
// parallel, and keeps the first found for each runtime.
func findInterpreters() map[string]Interpreter {
	type cand struct {
		family string
		path   string
	}
	var cands []cand
	seen := map[string]bool{}
	for family, names := range map[string][]string{function.FamilyPython: pythonNames, function.FamilyNode: nodeNames} {
		for _, n := range names {
			p, err := exec.LookPath(n)
			if err != nil {
				continue
			}
			if r, err := filepath.EvalSymlinks(p); err == nil {
				p = r
			}
			if p, err = filepath.Abs(p); err != nil || seen[p] {
				continue
			}
			seen[p] = true
			cands = append(cands, cand{family, p})
		}
	}
	found := make([]Interpreter, len(cands))
	var wg sync.WaitGroup
	for i, c := range cands {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if in, err := probe(c.family, c.path); err == nil {
				found[i] = in
			}
		}()
	}
	wg.Wait()
	out := map[string]Interpreter{}
	for _, in := range found {
		if in.Runtime == "" {
			continue
		}
		// The unversioned name came first: it wins over a duplicate.
		if _, ok := out[in.Runtime]; !ok {
			out[in.Runtime] = in
		}
	}
	return out
}

// probe runs an interpreter once to learn what it is.
func probe(family, path string) (Interpreter, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	switch family {
	case function.FamilyPython:
		out, err := exec.CommandContext(ctx, path, "-I", "-c", pythonProbe).Output()
		if err != nil {
			return Interpreter{}, err
		}
		var p struct {
			Exe, Version, SDK string
			Prefix, Site      []string
		}
		if err := json.Unmarshal(out, &p); err != nil || p.Exe == "" {
			return Interpreter{}, fmt.Errorf("probe %s: %q", path, out)
		}
		parts := strings.Split(p.Version, ".")
		return Interpreter{Runtime: "python" + parts[0] + "." + parts[1], Path: p.Exe, Version: p.Version, Prefix: p.Prefix, SDK: p.SDK, SitePackages: p.Site}, nil
	case function.FamilyNode:
		out, err := exec.CommandContext(ctx, path, "-p", "process.versions.node").Output()
		if err != nil {
			return Interpreter{}, err
		}
		v := strings.TrimSpace(string(out))
		major, _, _ := strings.Cut(v, ".")
		return Interpreter{Runtime: "nodejs" + major + ".x", Path: path, Version: v, Prefix: []string{filepath.Dir(filepath.Dir(path))}}, nil
	}
	return Interpreter{}, errors.New("no interpreter for " + family)
}

// mapRuntime gives runtime the interpreter of another runtime, or the
// executable at an absolute path, whatever version it is.
func (s *Set) mapRuntime(runtime, target string) error {
	fam := function.Family(runtime)
	if !function.Supported(runtime) || function.IsProvided(runtime) {
		return fmt.Errorf("--runtime-map %s: not a Node.js or Python runtime Stratus supports", runtime)
	}
	if filepath.IsAbs(target) {
		in, err := probe(fam, target)
		if err != nil {
			return fmt.Errorf("--runtime-map %s=%s: cannot run it as a %s interpreter: %v", runtime, target, fam, err)
		}
		in.MappedFrom, in.Runtime = in.Runtime, runtime
		s.interp[runtime] = in
		return nil
	}
	in, ok := s.interp[target]
	if !ok || function.Family(target) != fam {
		return fmt.Errorf("--runtime-map %s=%s: %s has no interpreter here (installed: %s)", runtime, target, target, s.installed())
	}
	in.MappedFrom, in.Runtime = target, runtime
	s.interp[runtime] = in
	return nil
}

// Check says whether functions of runtime can run here: it is the error
// CreateFunction and UpdateFunctionConfiguration refuse them with.
func (s *Set) Check(runtime string) error {
	if !function.Supported(runtime) || function.IsProvided(runtime) {
		return nil
	}
	if _, ok := s.interp[runtime]; ok {
		return nil
	}
	return function.Errorf(function.ErrInvalid, "The runtime %s has no interpreter on this Stratus host (installed: %s). Install it, or have the operator map it to another with --runtime-map %s=RUNTIME",
		runtime, s.installed(), runtime)
}

// installed names the runtimes that have interpreters.
func (s *Set) installed() string {
	var out []string
	for rt := range s.interp {
		out = append(out, rt)
	}
	if len(out) == 0 {
		return "none"
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// Interpreters lists the runtimes that can run, by name.
func (s *Set) Interpreters() []Interpreter {
	out := make([]Interpreter, 0, len(s.interp))
	for _, in := range s.interp {
		out = append(out, in)
	}
	slices.SortFunc(out, func(a, b Interpreter) int { return strings.Compare(a.Runtime, b.Runtime) })
	return out
}

// NodeSDKVersion is the version of the AWS SDK for JavaScript v3 in
// NodeSDK (its client-sts, client-s3 or any client's) and the number of
// @aws-sdk packages there.
func (s *Set) NodeSDKVersion() (version string, packages int) {
	if s.NodeSDK == "" {
		return "", 0
	}
	entries, _ := os.ReadDir(filepath.Join(s.NodeSDK, "@aws-sdk"))
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(s.NodeSDK, "@aws-sdk", e.Name(), "package.json"))
		if err != nil {
			continue
		}
		packages++
		var pj struct{ Version string }
		if json.Unmarshal(b, &pj) == nil && strings.HasPrefix(e.Name(), "client-") && (version == "" || e.Name() == "client-s3") {
			version = pj.Version
		}
	}
	return version, packages
}

// Command returns the argv that starts an instance of runtime, given the
// paths the instance sees for its code and the runtime clients.
func (s *Set) Command(runtime, taskRoot, runtimeDir string) ([]string, error) {
	if function.IsProvided(runtime) {
		return []string{filepath.Join(taskRoot, "bootstrap")}, nil
	}
	in, ok := s.interp[runtime]
	if !ok {
		return nil, s.Check(runtime)
	}
	switch function.Family(runtime) {
	case function.FamilyNode:
		return []string{in.Path, filepath.Join(runtimeDir, "node", "index.mjs")}, nil
	case function.FamilyPython:
		// -S: no site hooks of the host's (see bootstrap.py); the SDK is
		// found in the site-packages named after the script.
		return []string{in.Path, "-u", "-S", filepath.Join(runtimeDir, "python", "bootstrap.py"), strings.Join(in.SitePackages, ":")}, nil
	}
	return nil, errors.New("unsupported runtime " + runtime)
}

// HostPaths are the host folders sandboxed instances must see: the
// interpreters' installations (the Node.js SDK is bound per instance).
func (s *Set) HostPaths() []string {
	var out []string
	for _, in := range s.interp {
		for _, p := range in.Prefix {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	slices.Sort(out)
	return out
}

// SearchPath is PATH for instances of runtime: its interpreter's folder
// and the system folders.
func (s *Set) SearchPath(runtime string) string {
	dirs := "/usr/local/bin:/usr/bin:/bin"
	if in, ok := s.interp[runtime]; ok {
		dirs = filepath.Dir(in.Path) + ":" + dirs
	}
	return dirs
}
