package cloudwatchlogs

import (
	"testing"

	"github.com/stratus-faas/stratus/internal/logs"
)

func TestPattern(t *testing.T) {
	for _, tc := range []struct {
		pattern, message string
		match            bool
	}{
		{"", "anything", true},
		{"ERROR", "an ERROR here", true},
		{"ERROR", "an error here", false},
		{"ERROR timeout", "ERROR: timeout", true},
		{"ERROR timeout", "ERROR: slow", false},
		{`"disk full"`, "warning: disk full now", true},
		{`"disk full"`, "disk is full", false},
		{"?ERROR ?WARN", "WARN low memory", true},
		{"?ERROR ?WARN", "INFO ok", false},
		{"ERROR -retry", "ERROR will retry", false},
		{"ERROR -retry", "ERROR final", true},
		{`{ $.level = "ERROR" }`, `{"level":"ERROR","message":"x"}`, true},
		{`{ $.level = "ERROR" }`, `{"level":"INFO"}`, false},
		{`{ $.level = "ERROR" }`, `not json`, false},
		{`{ $.level != "INFO" }`, `{"level":"WARN"}`, true},
		{`{ $.metrics.durationMs > 100 }`, `{"metrics":{"durationMs":250.5}}`, true},
		{`{ $.metrics.durationMs > 100 }`, `{"metrics":{"durationMs":5}}`, false},
		{`{ $.level = "ERR*" }`, `{"level":"ERROR"}`, true},
		{`{ $.type = "platform.report" && $.record.status = "timeout" }`, `{"type":"platform.report","record":{"status":"timeout"}}`, true},
		{`{ $.type = "platform.report" && $.record.status = "timeout" }`, `{"type":"platform.report","record":{"status":"success"}}`, false},
		{`{ $.a = 1 || $.b = 2 }`, `{"b":2}`, true},
		{`{ $.ok = true }`, `{"ok":true}`, true},
	} {
		m, err := ParsePattern(tc.pattern)
		if err != nil {
			t.Errorf("%q: %v", tc.pattern, err)
			continue
		}
		if got := m(logs.Event{Message: tc.message}); got != tc.match {
			t.Errorf("%q on %q: %v, want %v", tc.pattern, tc.message, got, tc.match)
		}
	}
	for _, bad := range []string{`{ $.level = "x"`, `"open`, `{ level = 1 }`, `{ $.a < "x" }`, `[ip, user]`} {
		if _, err := ParsePattern(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzPattern(f *testing.F) {
	f.Add(`{ $.a.b >= 3 && $.c = "x*" || $.d != 1 }`, `{"a":{"b":4}}`)
	f.Add(`?x -y "z w"`, "x z w")
	f.Fuzz(func(t *testing.T, pattern, message string) {
		if m, err := ParsePattern(pattern); err == nil {
			m(logs.Event{Message: message})
		}
	})
}
