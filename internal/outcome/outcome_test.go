package outcome

import "testing"

func TestOutcome(t *testing.T) {
	tests := []struct {
		o              Outcome
		failed, billed bool
	}{
		{Success, false, true},
		{Error, true, true},
		{Timeout, true, true},
		{Throttle, false, false},
		{Cancelled, false, true},
		{Provisioned, false, false},
	}
	for _, tt := range tests {
		if tt.o.Failed() != tt.failed || tt.o.Billed() != tt.billed {
			t.Errorf("%s: failed %v billed %v", tt.o, tt.o.Failed(), tt.o.Billed())
		}
	}
}

func TestDoc(t *testing.T) {
	tests := []struct {
		doc     []byte
		summary string
	}{
		{ErrorDoc("Sandbox.Timedout", "Task timed out"), "Sandbox.Timedout: Task timed out"},
		{ErrorDoc("", "just a message"), "just a message"},
		{[]byte(`{"errorType":"Boom"}`), "Boom"},
		{[]byte(`not json`), ""},
		{[]byte(`"a string"`), ""},
	}
	for _, tt := range tests {
		if got := ParseDoc(tt.doc).Summary(); got != tt.summary {
			t.Errorf("%s: summary %q, want %q", tt.doc, got, tt.summary)
		}
	}
}
