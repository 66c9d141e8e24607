package runtimeapi

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

type recordingSink struct {
	mu     sync.Mutex
	chunks [][]byte
	fail   bool
}

func (s *recordingSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return 0, errors.New("reader gone")
	}
	s.chunks = append(s.chunks, append([]byte(nil), p...))
	return len(p), nil
}

func (s *recordingSink) Flush() {}

// chunkedBody is a body of unknown length: the client sends it chunked.
type chunkedBody struct{ r io.Reader }

func (c chunkedBody) Read(p []byte) (int, error) { return c.r.Read(p) }

func TestStreamedResponses(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		trailer   http.Header
		sinkFails bool
		want      string // what the sink got
		errType   string
	}{
		{"streamed", "one two three", nil, false, "one two three", ""},
		{"error in the trailers", "partial", http.Header{"Lambda-Runtime-Function-Error-Type": {"Error"},
			"Lambda-Runtime-Function-Error-Body": {base64.StdEncoding.EncodeToString([]byte(`{"errorMessage":"late","errorType":"Error"}`))}}, false, "partial", "Error"},
		{"reader gone", "dropped", nil, true, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Listen(-1, 1)
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			sink := &recordingSink{fail: tt.sinkFails}
			inv := &Invocation{RequestID: "req-1", Payload: []byte("{}"), Deadline: time.Now().Add(time.Minute), Stream: sink}
			res := e.Dispatch(inv)
			base := "http://" + e.Addr() + prefix
			resp, err := http.Get(base + "/invocation/next")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			req, _ := http.NewRequest(http.MethodPost, base+"/invocation/req-1/response", chunkedBody{strings.NewReader(tt.body)})
			req.Header.Set("Lambda-Runtime-Function-Response-Mode", "streaming")
			if tt.trailer != nil {
				req.Trailer = http.Header{}
				for k := range tt.trailer {
					req.Trailer[k] = nil
				}
				req.Body = io.NopCloser(io.MultiReader(strings.NewReader(tt.body), readerFunc(func([]byte) (int, error) {
					for k, v := range tt.trailer {
						req.Trailer[k] = v
					}
					return 0, io.EOF
				})))
			}
			if resp, err = http.DefaultClient.Do(req); err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			r := <-res
			if got := string(bytes.Join(sink.chunks, nil)); got != tt.want {
				t.Errorf("the sink got %q, want %q", got, tt.want)
			}
			if r.Streamed != int64(len(tt.body)) || r.ErrorType != tt.errType {
				t.Errorf("result: streamed %d, error %q; want %d, %q", r.Streamed, r.ErrorType, len(tt.body), tt.errType)
			}
		})
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

type countingSink struct{ n int64 }

func (c *countingSink) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }
func (c *countingSink) Flush()                      {}

// A stream past Lambda's limit is cut at the limit and ends in an error.
func TestStreamTooLong(t *testing.T) {
	e, err := Listen(-1, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	sink := &countingSink{}
	res := e.Dispatch(&Invocation{RequestID: "r", Payload: []byte("{}"), Deadline: time.Now().Add(time.Minute), Stream: sink})
	base := "http://" + e.Addr() + prefix
	resp, err := http.Get(base + "/invocation/next")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	body := io.LimitReader(zeroReader{}, MaxStreamedResponse+1<<20)
	req, _ := http.NewRequest(http.MethodPost, base+"/invocation/r/response", chunkedBody{body})
	req.Header.Set("Lambda-Runtime-Function-Response-Mode", "streaming")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	r := <-res
	if sink.n != MaxStreamedResponse || r.ErrorType != "Function.ResponseSizeTooLarge" {
		t.Errorf("passed on %d bytes, error %q", sink.n, r.ErrorType)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }
