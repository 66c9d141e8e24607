package runtimes

import (
	"strings"
	"testing"
)

func TestCheckAndMap(t *testing.T) {
	s := &Set{interp: map[string]Interpreter{
		"python3.11": {Runtime: "python3.11", Path: "/usr/bin/python3.11", Version: "3.11.7"},
		"nodejs20.x": {Runtime: "nodejs20.x", Path: "/usr/bin/node", Version: "20.20.2"},
	}}
	for _, tc := range []struct {
		runtime string
		ok      bool
	}{
		{"python3.11", true}, {"nodejs20.x", true}, {"provided.al2023", true},
		{"python3.13", false}, {"nodejs24.x", false},
		{"java21", true}, // not supported at all: Validate says so, not Check
	} {
		err := s.Check(tc.runtime)
		if (err == nil) != tc.ok {
			t.Errorf("Check(%s) = %v", tc.runtime, err)
		}
		if err != nil && !strings.Contains(err.Error(), "installed: nodejs20.x, python3.11") {
			t.Errorf("Check(%s) does not list what is installed: %v", tc.runtime, err)
		}
	}
	for _, tc := range []struct {
		runtime, target string
		ok              bool
	}{
		{"python3.13", "python3.11", true},
		{"nodejs24.x", "nodejs20.x", true},
		{"nodejs22.x", "python3.11", false}, // another family
		{"python3.12", "python3.10", false}, // not installed either
		{"provided.al2", "python3.11", false},
		{"python3.12", "/nonexistent/python", false},
	} {
		err := s.mapRuntime(tc.runtime, tc.target)
		if (err == nil) != tc.ok {
			t.Errorf("map %s=%s: %v", tc.runtime, tc.target, err)
		}
		if tc.ok {
			if in := s.interp[tc.runtime]; in.MappedFrom != tc.target || in.Runtime != tc.runtime || s.Check(tc.runtime) != nil {
				t.Errorf("map %s=%s: %+v", tc.runtime, tc.target, in)
			}
		}
	}
	argv, err := s.Command("nodejs24.x", "/var/task", "/var/runtime")
	if err != nil || argv[0] != "/usr/bin/node" {
		t.Errorf("Command of a mapped runtime: %v %v", argv, err)
	}
	if _, err := s.Command("python3.14", "/var/task", "/var/runtime"); err == nil {
		t.Error("Command of a runtime with no interpreter")
	}
}
