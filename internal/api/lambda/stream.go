package lambda

import (
	"encoding/json"
	"net/http"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"

	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/invoke"
)

// eventSink writes a streamed response as event-stream PayloadChunk
// messages, flushing each; the answer's status goes out with the first
// (so that a function not found or throttled is an ordinary error
// answer). Once closed (the invocation ended, perhaps by a timeout while
// the runtime still writes) it takes nothing more.
type eventSink struct {
	mu      sync.Mutex
	w       http.ResponseWriter
	rc      *http.ResponseController
	enc     *eventstream.Encoder
	started bool
	closed  bool
	failed  bool
}

func (s *eventSink) message(eventType, contentType string, payload []byte) error {
	if !s.started {
		s.started = true
		s.w.Header()["Content-Type"] = []string{"application/vnd.amazon.eventstream"}
		s.w.WriteHeader(http.StatusOK)
	}
	var h eventstream.Headers
	h.Set(":event-type", eventstream.StringValue(eventType))
	h.Set(":content-type", eventstream.StringValue(contentType))
	h.Set(":message-type", eventstream.StringValue("event"))
	return s.enc.Encode(s.w, eventstream.Message{Headers: h, Payload: payload})
}

func (s *eventSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.failed {
		return 0, http.ErrHandlerTimeout
	}
	if err := s.message("PayloadChunk", "application/octet-stream", p); err != nil {
		s.failed = true
		return 0, err
	}
	return len(p), nil
}

func (s *eventSink) Flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed && !s.failed {
		_ = s.rc.Flush()
	}
}

// complete ends the stream with InvokeComplete; nothing is written after.
func (s *eventSink) complete(errorCode, details, logResult string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	if s.failed {
		return
	}
	body, _ := json.Marshal(map[string]string{"ErrorCode": errorCode, "ErrorDetails": details, "LogResult": logResult})
	_ = s.message("InvokeComplete", "application/json", body)
	_ = s.rc.Flush()
}

// invokeStream is InvokeWithResponseStream: the function's answer goes to
// the caller as the function streams it, in PayloadChunk events, then
// InvokeComplete. A function that answers whole (a buffered one) is sent
// as one chunk, as Lambda does.
func (a *API) invokeStream(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("name")
	if r.ContentLength > function.MaxSyncPayload {
		return a.at(ref, function.Errorf(function.ErrTooLarge, "Request must be smaller than %d bytes for the InvokeWithResponseStream operation", function.MaxSyncPayload))
	}
	payload, err := readLimited(r.Body, r.ContentLength, function.MaxSyncPayload)
	if err != nil {
		return a.at(ref, err)
	}
	h := r.Header
	switch h.Get("X-Amz-Invocation-Type") {
	case "", invoke.RequestResponse:
	case invoke.DryRun:
		if _, err := a.reg.Resolve(ref, r.URL.Query().Get("Qualifier")); err != nil {
			return a.at(ref, err)
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	default:
		return a.at(ref, function.Errorf(function.ErrInvalid, "Invocation type %s is not supported by InvokeWithResponseStream", h.Get("X-Amz-Invocation-Type")))
	}
	sink := &eventSink{w: w, rc: http.NewResponseController(w), enc: eventstream.NewEncoder()}
	resp, err := a.inv.Invoke(r.Context(), invoke.Request{
		FunctionName:  ref,
		Qualifier:     r.URL.Query().Get("Qualifier"),
		Payload:       payload,
		LogTail:       h.Get("X-Amz-Log-Type") == "Tail",
		ClientContext: h.Get("X-Amz-Client-Context"),
		TraceID:       h.Get("X-Amzn-Trace-Id"),
		Stream:        sink,
	})
	if err != nil {
		if !sink.begun() {
			return a.at(ref, err)
		}
		sink.complete("ServiceException", err.Error(), "")
		return nil
	}
	if resp.Streamed == 0 && len(resp.Payload) > 0 && !resp.Outcome.Failed() {
		// A buffered function: its whole answer, one chunk.
		_, _ = sink.Write(resp.Payload)
	}
	code, details := "", ""
	if resp.Outcome.Failed() {
		code, details = resp.ErrorType, string(resp.Payload)
		if code == "" {
			code = "Unhandled"
		}
	}
	sink.complete(code, details, resp.LogResult)
	return nil
}

// begun reports whether the answer's status is out.
func (s *eventSink) begun() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.started
}
