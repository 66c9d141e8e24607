package rules

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestAlertRules checks the shipped alerting rules with Prometheus's own
// promtool (syntax, and every rule against its test series), and that
// each metric they name is one Stratus exports.
func TestAlertRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is required (Debian's prometheus package; .ci/run installs it)")
	}
	dir := filepath.Join("..", "..", "monitoring")
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	rules, err := os.ReadFile(filepath.Join(dir, "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var src strings.Builder
	_ = filepath.WalkDir(filepath.Join("..", "..", "internal"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			b, _ := os.ReadFile(p)
			src.Write(b)
		}
		return nil
	})
	for _, name := range regexp.MustCompile(`stratus_[a-z_]+`).FindAllString(string(rules), -1) {
		if !strings.Contains(src.String(), `"`+name+`"`) {
			t.Errorf("alerts.yml names %s, which no Stratus package exports", name)
		}
	}
}
