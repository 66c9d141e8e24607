// Package outcome names how an invocation ended, in the one vocabulary the
// invocation path, the gateway, the triggers, the meter, the metrics and
// the logs switch on, and builds Lambda's error documents.
package outcome

import "encoding/json"

// Outcome is how one invocation (or usage record) ended. Its string is
// what usage records store and metrics label, so the values never change.
type Outcome string

// Outcomes.
const (
	// Success: the function answered.
	Success Outcome = "success"
	// Error: the function reported an error, its runtime crashed or ran
	// out of memory, or its init failed. The caller gets a function error.
	Error Outcome = "error"
	// Timeout: the function ran past its timeout and was stopped.
	Timeout Outcome = "timeout"
	// Throttle: refused over a concurrency or scaling limit; nothing ran.
	Throttle Outcome = "throttle"
	// Cancelled: cut off by the caller or by shutdown, not by the
	// function. Work cut off this way is redelivered, not failed.
	Cancelled Outcome = "cancelled"
	// Provisioned: a usage record of provisioned instances kept, not an
	// invocation.
	Provisioned Outcome = "provisioned"
	// Environment: a usage record of a multi-concurrency execution
	// environment kept (busy or idle), not an invocation.
	Environment Outcome = "environment"
)

// Failed reports whether the caller sees a function error.
func (o Outcome) Failed() bool { return o == Error || o == Timeout }

// Billed reports whether the record is a billed request. Work cancelled
// by shutdown used its compute too, and is billed again when redelivered.
func (o Outcome) Billed() bool { return o == Success || o.Failed() || o == Cancelled }

// Lambda's error types that Stratus itself reports.
const (
	TypeTimedOut     = "Sandbox.Timedout"
	TypeExit         = "Runtime.ExitError"
	TypeOutOfMemory  = "Runtime.OutOfMemory"
	TypeUnknown      = "Runtime.Unknown"
	TypeTooLarge     = "Function.ResponseSizeTooLarge"
	TypeUnhandled    = "Unhandled"
	TypeShuttingDown = "Runtime.Shutdown"
)

// ErrorDoc renders Lambda's error document.
func ErrorDoc(typ, msg string) []byte {
	b, _ := json.Marshal(struct {
		ErrorMessage string `json:"errorMessage"`
		ErrorType    string `json:"errorType"`
	}{msg, typ})
	return b
}

// Doc is the parsed part of an error document.
type Doc struct {
	Message string `json:"errorMessage"`
	Type    string `json:"errorType"`
}

// ParseDoc reads an error document; fields it lacks are empty.
func ParseDoc(doc []byte) Doc {
	var d Doc
	_ = json.Unmarshal(doc, &d)
	return d
}

// Summary is "type: message", or whichever of them is set.
func (d Doc) Summary() string {
	switch {
	case d.Message == "":
		return d.Type
	case d.Type == "":
		return d.Message
	}
	return d.Type + ": " + d.Message
}
