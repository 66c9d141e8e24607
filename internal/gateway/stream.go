package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
)

// integrationResponse is the content type of a streamed function URL
// answer that starts with its status and headers: a JSON prelude, eight
// zero bytes, then the body.
const integrationResponse = "application/vnd.awslambda.http-integration-response"

// maxPrelude bounds the prelude held before the body starts.
const maxPrelude = 64 << 10

var errGone = errors.New("the client went away")

// urlStream writes a function's streamed answer to a function URL's
// client as it comes, with no buffering: the prelude's status and headers
// first (when the function sends one), then each chunk, flushed.
type urlStream struct {
	mu      sync.Mutex
	w       http.ResponseWriter
	rc      *http.ResponseController
	ctype   string
	prelude bytes.Buffer
	started bool // the status line is out
	failed  bool
	closed  bool
	wrote   int64
}

// ContentType is told the content type the runtime streams with.
func (s *urlStream) ContentType(ct string) {
	s.mu.Lock()
	s.ctype = ct
	s.mu.Unlock()
}

func (s *urlStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed || s.closed {
		return 0, errGone
	}
	n := len(p)
	if !s.started && s.ctype == integrationResponse {
		s.prelude.Write(p)
		b := s.prelude.Bytes()
		i := bytes.Index(b, make([]byte, 8))
		if i < 0 {
			if s.prelude.Len() > maxPrelude {
				s.failed = true
				return 0, errors.New("the function's prelude is too long")
			}
			return n, nil
		}
		s.begin(b[:i])
		p = b[i+8:]
	} else if !s.started {
		s.begin(nil)
	}
	if len(p) > 0 {
		if _, err := s.w.Write(p); err != nil {
			s.failed = true
			return 0, errGone
		}
		s.wrote += int64(len(p))
	}
	return n, nil
}

// begin writes the status and headers: the prelude's, or 200.
func (s *urlStream) begin(prelude []byte) {
	s.started = true
	h := s.w.Header()
	status := http.StatusOK
	if prelude != nil {
		var pr struct {
			StatusCode int               `json:"statusCode"`
			Headers    map[string]string `json:"headers"`
			Cookies    []string          `json:"cookies"`
		}
		if json.Unmarshal(prelude, &pr) == nil {
			if pr.StatusCode >= 100 && pr.StatusCode <= 599 {
				status = pr.StatusCode
			}
			for k, v := range pr.Headers {
				h.Set(k, v)
			}
			for _, c := range pr.Cookies {
				h.Add("Set-Cookie", c)
			}
		}
	} else if s.ctype != "" && h.Get("Content-Type") == "" {
		h.Set("Content-Type", s.ctype)
	}
	if h.Get("Content-Type") == "" {
		h.Set("Content-Type", "application/octet-stream")
	}
	s.w.WriteHeader(status)
}

func (s *urlStream) Flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started && !s.failed && !s.closed {
		_ = s.rc.Flush()
	}
}

// end closes the stream to writes; it reports whether the status line
// went out (if not, the caller answers).
func (s *urlStream) end() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if !s.started && s.prelude.Len() > 0 {
		// A prelude without its separator: what came is the body.
		p := append([]byte(nil), s.prelude.Bytes()...)
		s.ctype = ""
		s.begin(nil)
		_, _ = s.w.Write(p)
	}
	return s.started
}
