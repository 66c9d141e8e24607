// Package runtimes knows how to start each supported runtime and carries
// the Node.js and Python runtime clients, embedded in the binary.
package runtimes

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/stratus-faas/stratus/internal/function"
)

//go:embed node/index.mjs python/bootstrap.py
var clients embed.FS

// Set holds the runtime clients installed on disk and the host interpreters.
type Set struct {
	Dir    string // host folder holding node/ and python/
	Node   string // absolute path of node, empty when absent
	Python string // absolute path of python3, empty when absent

	pythonPrefixes []string
}

// Install writes the embedded runtime clients under root (in a folder named
// for their content, so a new binary never runs an old client) and finds
// the host's interpreters.
func Install(root string) (*Set, error) {
	h := sha256.New()
	_ = fs.WalkDir(clients, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := clients.ReadFile(p)
			h.Write([]byte(p))
			h.Write(b)
		}
		return nil
	})
	dir := filepath.Join(root, hex.EncodeToString(h.Sum(nil))[:16])
	if _, err := os.Stat(dir); err != nil {
		tmp, err := os.MkdirTemp(root, ".install-")
		if err != nil {
			if err := os.MkdirAll(root, 0o755); err != nil {
				return nil, fmt.Errorf("create runtime folder: %w", err)
			}
			if tmp, err = os.MkdirTemp(root, ".install-"); err != nil {
				return nil, fmt.Errorf("create runtime folder: %w", err)
			}
		}
		err = fs.WalkDir(clients, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			dst := filepath.Join(tmp, filepath.FromSlash(p))
			if d.IsDir() {
				return os.MkdirAll(dst, 0o755)
			}
			b, err := clients.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(dst, b, 0o444)
		})
		if err == nil {
			err = os.Chmod(tmp, 0o755)
		}
		if err == nil {
			err = os.Rename(tmp, dir)
		}
		if err != nil && !errors.Is(err, fs.ErrExist) {
			_ = os.RemoveAll(tmp)
			if _, statErr := os.Stat(dir); statErr != nil {
				return nil, fmt.Errorf("install runtime clients: %w", err)
			}
		}
	}
	py, prefixes := findPython()
	return &Set{Dir: dir, Node: findNode(), Python: py, pythonPrefixes: prefixes}, nil
}

func findNode() string {
	p, err := exec.LookPath("node")
	if err != nil {
		return ""
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

// findPython resolves python3 to the real interpreter: version managers
// put shell-script shims on PATH that cost tens of milliseconds per start.
func findPython() (string, []string) {
	p, err := exec.LookPath("python3")
	if err != nil {
		return "", nil
	}
	out, err := exec.Command(p, "-c", "import sys; print(sys.executable); print(sys.base_prefix); print(sys.prefix)").Output()
	if err == nil {
		lines := strings.Fields(string(out))
		if len(lines) == 3 && lines[0] != "" {
			return lines[0], lines[1:]
		}
	}
	return p, nil
}

// Command returns the argv that starts an instance of runtime, given the
// paths the instance sees for its code and the runtime clients.
func (s *Set) Command(runtime, taskRoot, runtimeDir string) ([]string, error) {
	switch function.Family(runtime) {
	case function.FamilyProvided:
		return []string{filepath.Join(taskRoot, "bootstrap")}, nil
	case function.FamilyNode:
		if s.Node == "" {
			return nil, errors.New("runtime " + runtime + " needs node, which is not installed on this host")
		}
		return []string{s.Node, filepath.Join(runtimeDir, "node", "index.mjs")}, nil
	case function.FamilyPython:
		if s.Python == "" {
			return nil, errors.New("runtime " + runtime + " needs python3, which is not installed on this host")
		}
		return []string{s.Python, "-u", filepath.Join(runtimeDir, "python", "bootstrap.py")}, nil
	}
	return nil, errors.New("unsupported runtime " + runtime)
}

// HostPaths are the folders of the interpreters' installations, which
// sandboxed instances must see.
func (s *Set) HostPaths() []string {
	var out []string
	if s.Node != "" {
		out = append(out, filepath.Dir(filepath.Dir(s.Node)))
	}
	out = append(out, s.pythonPrefixes...)
	return out
}

// SearchPath is PATH for instances: the system folders plus the folders
// of the interpreters found.
func (s *Set) SearchPath() string {
	dirs := []string{"/usr/local/bin", "/usr/bin", "/bin"}
	for _, p := range []string{s.Node, s.Python} {
		if p != "" {
			dirs = append([]string{filepath.Dir(p)}, dirs...)
		}
	}
	return strings.Join(dirs, ":")
}
