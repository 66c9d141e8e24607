package runtimeapi

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestEndpointProtocol(t *testing.T) {
	e, err := Listen(-1, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	base := "http://" + e.Addr() + "/2018-06-01/runtime"
	deadline := time.Now().Add(3 * time.Second)
	inv := &Invocation{RequestID: "req-1", Payload: []byte(`{"a":1}`), Deadline: deadline, FunctionARN: "arn:x", TraceID: "Root=1-x", ClientContext: `{"c":1}`}

	res := e.Dispatch(inv)
	resp, err := http.Get(base + "/invocation/next")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	select {
	case <-e.Ready():
	default:
		t.Error("first /next did not mark the instance ready")
	}
	if string(body) != `{"a":1}` || !inv.Picked() {
		t.Errorf("body %q picked %v", body, inv.Picked())
	}
	for h, want := range map[string]string{
		"Lambda-Runtime-Aws-Request-Id":       "req-1",
		"Lambda-Runtime-Deadline-Ms":          strconv.FormatInt(deadline.UnixMilli(), 10),
		"Lambda-Runtime-Invoked-Function-Arn": "arn:x",
		"Lambda-Runtime-Trace-Id":             "Root=1-x",
		"Lambda-Runtime-Client-Context":       `{"c":1}`,
	} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}

	post := func(path, body string, hdr map[string]string) int {
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// Another request id cannot be answered.
	if code := post("/invocation/other/response", `1`, nil); code != 400 {
		t.Errorf("foreign id answered with %d", code)
	}
	if code := post("/invocation/req-1/response", `{"ok":true}`, nil); code != 202 {
		t.Errorf("response: %d", code)
	}
	if r := <-res; string(r.Payload) != `{"ok":true}` || r.ErrorType != "" {
		t.Errorf("result %+v", r)
	}
	// Answering twice is refused.
	if code := post("/invocation/req-1/response", `2`, nil); code != 400 {
		t.Errorf("second answer: %d", code)
	}

	// Error path, with the error type header.
	res = e.Dispatch(&Invocation{RequestID: "req-2", Payload: []byte(`{}`), Deadline: deadline})
	resp, _ = http.Get(base + "/invocation/next")
	resp.Body.Close()
	if code := post("/invocation/req-2/error", `{"errorMessage":"m","errorType":"E"}`, map[string]string{"Lambda-Runtime-Function-Error-Type": "Function.E"}); code != 202 {
		t.Errorf("error: %d", code)
	}
	if r := <-res; r.ErrorType != "Function.E" || !strings.Contains(string(r.Payload), `"m"`) {
		t.Errorf("error result %+v", r)
	}

	// Oversized response: 413 to the runtime, a function error for the caller.
	res = e.Dispatch(&Invocation{RequestID: "req-3", Payload: []byte(`{}`), Deadline: deadline})
	resp, _ = http.Get(base + "/invocation/next")
	resp.Body.Close()
	if code := post("/invocation/req-3/response", strings.Repeat("x", 6*1024*1024+101), nil); code != 413 {
		t.Errorf("oversized: %d", code)
	}
	if r := <-res; r.ErrorType != "Function.ResponseSizeTooLarge" {
		t.Errorf("oversized result %+v", r)
	}

	if code := post("/init/error", `not json`, nil); code != 202 {
		t.Errorf("init error: %d", code)
	}
	if r := <-e.InitError(); r.ErrorType != "Runtime.Unknown" {
		t.Errorf("init error result %+v", r)
	}
}
