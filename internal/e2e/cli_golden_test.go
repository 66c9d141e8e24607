package e2e

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite the golden files of the CLI's output")

// TestStratusCLIGolden checks what the stratus CLI prints, as text: its
// tables, its errors in plain words (a missing function, a stopped
// server, bad arguments) and its help. What changes from run to run
// (times, ports, ids, sizes of a freshly built binary) is masked.
func TestStratusCLIGolden(t *testing.T) {
	s := startServer(t, "")
	env := append(os.Environ(), "STRATUS_ENDPOINT="+s.Endpoint, "STRATUS_DATA_DIR="+s.dataDir)
	var transcript strings.Builder
	run := func(args ...string) {
		cmd := exec.Command(stratusBin, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		transcript.WriteString("$ stratus " + strings.Join(args, " ") + "\n")
		transcript.Write(out)
		transcript.WriteString("[exit " + strconv.Itoa(code) + "]\n\n")
	}
	goDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(goDir, "bootstrap"), goBootstrap, 0o755); err != nil {
		t.Fatal(err)
	}
	run("deploy", "golden", goDir, "--memory", "256", "--timeout", "5")
	run("invoke", "golden", `{"name":"golden"}`)
	run("invoke", "golden", `{"fail":"error"}`)
	run("invoke", "nope")
	run("invoke", "golden", "not json")
	run("ls")
	run("rm", "nope")
	run("ls", "--endpoint", "http://127.0.0.1:1")
	run("invoke", "golden", "--endpoint", "http://127.0.0.1:1")
	run("frobnicate")
	run("deploy")
	run("invoke", "--help")

	got := maskVolatile(strings.ReplaceAll(transcript.String(), goDir, "DIR"))
	path := filepath.Join(repoRoot, "internal", "e2e", "testdata", "cli.golden")
	if *updateGolden {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update-golden to write it)", err)
	}
	if got != string(want) {
		t.Errorf("the CLI's output differs from %s (run with -update-golden if the change is meant):\n%s", path, lineDiff(string(want), got))
	}
}

var volatile = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d{4}|[+-]\d\d:\d\d)`), "TIME"},
	{regexp.MustCompile(`127\.0\.0\.1:\d{2,5}`), "127.0.0.1:PORT"},
	{regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`), "UUID"},
	{regexp.MustCompile(`\d+(\.\d+)? (ms|KB|MB) `), "N $2 "},
	{regexp.MustCompile(`\d+\.\d+ ms`), "N ms"},
	{regexp.MustCompile(`\bin \d+(\.\d+)?m?s\b`), "in N ms"},
	{regexp.MustCompile(`"remainingMs":\d+`), `"remainingMs":N`},
	{regexp.MustCompile(`"instance":"[0-9a-f]{16}"`), `"instance":"ID"`},
	{regexp.MustCompile(`[ \t]+\n`), "\n"},
}

// maskVolatile replaces what differs between runs; columns are then
// re-aligned by collapsing runs of spaces.
func maskVolatile(s string) string {
	for _, v := range volatile {
		s = v.re.ReplaceAllString(s, v.with)
	}
	return regexp.MustCompile(` {2,}`).ReplaceAllString(s, "  ")
}

// lineDiff shows the lines that differ.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			b.WriteString("- " + wl + "\n+ " + gl + "\n")
		}
	}
	return b.String()
}
