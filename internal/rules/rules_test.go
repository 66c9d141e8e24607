package rules

import (
	"bytes"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/stratus-faas/stratus/"

// layers puts every package in the order imports flow: a package imports
// only packages of its own layer or a lower one (ARCHITECTURE.md, section
// 2). A new package must be placed here.
var layers = map[string]int{
	"internal/function":  0,
	"internal/outcome":   0,
	"internal/peercred":  0,
	"internal/config":    0,
	"internal/batcher":   0,
	"internal/recursion": 0,
	"internal/alerts":    1,

	"internal/store":      1,
	"internal/sandbox":    1,
	"internal/runtimeapi": 1,
	"internal/auth":       1,
	"internal/runtimes":   1,
	"internal/logs":       1,
	"internal/meter":      1,

	"internal/registry":      2,
	"internal/pool":          2,
	"internal/pool/pooltest": 2,
	"internal/objects":       2,
	"internal/queue":         2,
	"internal/httpapi":       2,
	"internal/schedule":      2,
	"internal/cluster":       2,

	"internal/invoke":  3,
	"internal/events":  3,
	"internal/esm":     3,
	"internal/gateway": 3,

	"internal/api/lambda":         4,
	"internal/api/sqs":            4,
	"internal/api/scheduler":      4,
	"internal/api/apigateway":     4,
	"internal/api/stratusapi":     4,
	"internal/api/iam":            4,
	"internal/api/s3":             4,
	"internal/api/cloudwatchlogs": 4,
	"internal/dashboard":          4,

	"internal/server": 5,
	"internal/cli":    5,

	"cmd/stratus":             6,
	"internal/e2e":            6,
	"internal/e2e/echoserver": 6,
	"internal/e2e/fileserver": 6,
	"internal/e2e/floorrelay": 6,
	"internal/rules":          6,
	"examples/go-hello":       6,
}

func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// packages parses the non-test files of every package of the module.
func packages(t *testing.T) map[string][]string {
	t.Helper()
	root := repoRoot(t)
	out := map[string][]string{}
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		out[filepath.ToSlash(rel)] = append(out[filepath.ToSlash(rel)], path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestImportDirection(t *testing.T) {
	fset := token.NewFileSet()
	for pkg, files := range packages(t) {
		layer, ok := layers[pkg]
		if !ok {
			t.Errorf("%s has no layer: place it in rules_test.go as ARCHITECTURE.md says", pkg)
			continue
		}
		for _, file := range files {
			f, err := parser.ParseFile(fset, file, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range f.Imports {
				path := strings.Trim(imp.Path.Value, `"`)
				dep, ok := strings.CutPrefix(path, module)
				if !ok {
					continue
				}
				if l, known := layers[dep]; known && l > layer {
					t.Errorf("%s (layer %d) imports %s (layer %d): imports flow downwards only", pkg, layer, dep, l)
				}
			}
		}
	}
}

func TestPackageDocs(t *testing.T) {
	fset := token.NewFileSet()
	var missing []string
	for pkg, files := range packages(t) {
		documented := false
		for _, file := range files {
			f, err := parser.ParseFile(fset, file, nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			if f.Doc != nil && strings.TrimSpace(f.Doc.Text()) != "" {
				documented = true
				break
			}
		}
		if !documented {
			missing = append(missing, pkg)
		}
	}
	sort.Strings(missing)
	for _, pkg := range missing {
		t.Errorf("package %s has no doc comment", pkg)
	}
}

func TestGoModTidy(t *testing.T) {
	cmd := exec.Command("go", "mod", "tidy", "-diff")
	cmd.Dir = repoRoot(t)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("go.mod is not tidy (run go mod tidy):\n%s", out.String())
	}
}
