// Package runtimeapi serves the Lambda Runtime API to one instance.
//
// Every instance gets its own endpoint, so an instance can only ever be
// handed its own invocations, and an answer is accepted only for a
// request id the endpoint has in flight: one at a time, or up to the
// instance's concurrency in a multi-concurrency environment.
package runtimeapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/outcome"
	"github.com/stratus-faas/stratus/internal/peercred"
)

const prefix = "/2018-06-01/runtime"

// Invocation is one event handed to the runtime.
type Invocation struct {
	RequestID       string
	Payload         []byte
	Deadline        time.Time
	FunctionARN     string
	TraceID         string
	ClientContext   string // JSON, already decoded from the base64 header
	CognitoIdentity string
	// Stream, when set, takes a streamed response as it arrives (see
	// handleResponse); a buffered one arrives in Result.Payload.
	Stream Sink

	picked atomic.Bool
}

// Sink takes the bytes of a streamed response as they come.
type Sink interface {
	// Write passes bytes on; an error means nobody reads any more (the
	// rest of the stream is then read and dropped).
	Write(p []byte) (int, error)
	Flush()
}

// MaxStreamedResponse is Lambda's limit on a streamed response.
const MaxStreamedResponse = 200 << 20

// Picked reports whether the runtime has received the invocation.
func (inv *Invocation) Picked() bool { return inv.picked.Load() }

// Result is the runtime's answer to an invocation, or to init.
type Result struct {
	Payload   []byte
	ErrorType string // non-empty when the function (or runtime) reported an error
	// Streamed counts the bytes passed to the invocation's Stream; an
	// error reported mid-stream (in the trailers) is in ErrorType and
	// Payload.
	Streamed int64
}

// Endpoint is the Runtime API of one instance.
type Endpoint struct {
	ln  net.Listener
	srv *http.Server

	ready     chan struct{}
	readyOnce sync.Once
	initErr   chan Result
	next      chan *Invocation
	closed    chan struct{}
	closeOnce sync.Once

	mu       sync.Mutex
	inflight map[string]flight
}

// flight is an invocation handed out and where its answer goes.
type flight struct {
	inv *Invocation
	res chan Result
}

// Listen opens an endpoint on a fresh loopback port for an instance that
// takes up to conc invocations at once. With uid >= 0, only connections
// from sockets of that uid are served.
func Listen(uid, conc int) (*Endpoint, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return ServeChecked(ln, uid, peercred.UID, conc), nil
}

// ServeChecked serves an endpoint on ln, which it then owns, with the
// lookup of a connection's peer uid given: one in the network namespace
// ln is in. With uid >= 0, only connections from sockets of that uid are
// served.
func ServeChecked(ln net.Listener, uid int, uidOf func(net.Conn) (int, error), conc int) *Endpoint {
	if uid >= 0 {
		ln = &peerListener{Listener: ln, uid: uid, uidOf: uidOf}
	}
	e := &Endpoint{
		ln:       ln,
		ready:    make(chan struct{}),
		initErr:  make(chan Result, 1),
		next:     make(chan *Invocation, max(1, conc)),
		closed:   make(chan struct{}),
		inflight: make(map[string]flight, max(1, conc)),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+prefix+"/invocation/next", e.handleNext)
	mux.HandleFunc("POST "+prefix+"/invocation/{id}/response", e.handleResponse)
	mux.HandleFunc("POST "+prefix+"/invocation/{id}/error", e.handleError)
	mux.HandleFunc("POST "+prefix+"/init/error", e.handleInitError)
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	// No write timeout: /next is a long poll that may wait for minutes.
	e.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = e.srv.Serve(ln) }()
	return e
}

// Addr is the host:port for AWS_LAMBDA_RUNTIME_API.
func (e *Endpoint) Addr() string { return e.ln.Addr().String() }

// Ready is closed when the runtime first asks for an event: init is done.
func (e *Endpoint) Ready() <-chan struct{} { return e.ready }

// InitError delivers an error the runtime reported during init.
func (e *Endpoint) InitError() <-chan Result { return e.initErr }

// Dispatch hands inv to the runtime and returns where its result will
// arrive. The caller keeps no more invocations in flight than the
// endpoint's concurrency.
func (e *Endpoint) Dispatch(inv *Invocation) <-chan Result {
	res := make(chan Result, 1)
	e.mu.Lock()
	e.inflight[inv.RequestID] = flight{inv: inv, res: res}
	e.mu.Unlock()
	e.next <- inv
	return res
}

// Forget drops an invocation the caller gave up on (a timeout, a
// cancellation): a late answer to it is refused.
func (e *Endpoint) Forget(id string) {
	e.mu.Lock()
	delete(e.inflight, id)
	e.mu.Unlock()
}

// Close stops serving; a pending /next returns.
func (e *Endpoint) Close() {
	e.closeOnce.Do(func() {
		close(e.closed)
		_ = e.srv.Close()
	})
}

func (e *Endpoint) handleNext(w http.ResponseWriter, r *http.Request) {
	e.readyOnce.Do(func() { close(e.ready) })
	var inv *Invocation
	select {
	case inv = <-e.next:
	case <-r.Context().Done():
		return
	case <-e.closed:
		writeError(w, http.StatusGone, outcome.TypeShuttingDown, "instance is shutting down")
		return
	}
	inv.picked.Store(true)
	h := w.Header()
	h["Lambda-Runtime-Aws-Request-Id"] = []string{inv.RequestID}
	h["Lambda-Runtime-Deadline-Ms"] = []string{strconv.FormatInt(inv.Deadline.UnixMilli(), 10)}
	h["Lambda-Runtime-Invoked-Function-Arn"] = []string{inv.FunctionARN}
	h["Lambda-Runtime-Trace-Id"] = []string{inv.TraceID}
	if inv.ClientContext != "" {
		h["Lambda-Runtime-Client-Context"] = []string{inv.ClientContext}
	}
	if inv.CognitoIdentity != "" {
		h["Lambda-Runtime-Cognito-Identity"] = []string{inv.CognitoIdentity}
	}
	h["Content-Type"] = []string{"application/json"}
	h["Content-Length"] = []string{strconv.Itoa(len(inv.Payload))}
	h["Date"] = nil // no clock formatting per event
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(inv.Payload)
}

// take removes the in-flight invocation id names, if any.
func (e *Endpoint) take(id string) chan Result {
	e.mu.Lock()
	defer e.mu.Unlock()
	f, ok := e.inflight[id]
	if !ok || !f.inv.Picked() {
		return nil
	}
	delete(e.inflight, id)
	return f.res
}

// current is the in-flight invocation id names, if any.
func (e *Endpoint) current(id string) *Invocation {
	e.mu.Lock()
	defer e.mu.Unlock()
	f, ok := e.inflight[id]
	if !ok || !f.inv.Picked() {
		return nil
	}
	return f.inv
}

// streaming: the runtime streams its answer, as Lambda's runtimes say
// with the response mode header, or as aws-lambda-go does, with a chunked
// body.
func streaming(r *http.Request) bool {
	return r.Header.Get("Lambda-Runtime-Function-Response-Mode") == "streaming" || r.ContentLength < 0
}

func (e *Endpoint) handleResponse(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if inv := e.current(id); inv != nil && inv.Stream != nil && streaming(r) {
		e.stream(w, r, inv)
		return
	}
	body, tooLarge, err := readBody(r, function.MaxResponsePayload)
	if err != nil {
		writeError(w, http.StatusBadRequest, "TruncatedHTTPRequest", err.Error())
		return
	}
	res := e.take(id)
	if res == nil {
		writeError(w, http.StatusBadRequest, "InvalidRequestID", "Invalid request ID")
		return
	}
	if tooLarge {
		msg := "Response payload size exceeded maximum allowed payload size (" + strconv.Itoa(function.MaxResponsePayload) + " bytes)."
		res <- Result{ErrorType: outcome.TypeTooLarge, Payload: outcome.ErrorDoc(outcome.TypeTooLarge, msg)}
		writeError(w, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", msg)
		return
	}
	if r := trailerError(r); r != nil {
		res <- *r
		accepted(w)
		return
	}
	res <- Result{Payload: body}
	accepted(w)
}

// stream passes a streamed answer to the invocation's sink chunk by chunk
// as it is read, up to MaxStreamedResponse; then the result says how much
// went and any error the trailers report. A sink that fails (its reader
// went away) gets no more; the rest is read and dropped, so the function
// finishes and nothing piles up.
func (e *Endpoint) stream(w http.ResponseWriter, r *http.Request, inv *Invocation) {
	if ct, ok := inv.Stream.(interface{ ContentType(string) }); ok {
		ct.ContentType(r.Header.Get("Content-Type"))
	}
	buf := make([]byte, 32<<10)
	var n int64
	sinkOK := true
	var readErr error
	for {
		m, err := r.Body.Read(buf)
		if m > 0 {
			if n+int64(m) > MaxStreamedResponse {
				m = int(MaxStreamedResponse - n)
				readErr = errTooLong
			}
			if sinkOK && m > 0 {
				if _, werr := inv.Stream.Write(buf[:m]); werr != nil {
					sinkOK = false
				} else {
					inv.Stream.Flush()
				}
			}
			n += int64(m)
		}
		if readErr != nil {
			break
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			readErr = err
			break
		}
	}
	res := e.take(inv.RequestID)
	if res == nil {
		writeError(w, http.StatusBadRequest, "InvalidRequestID", "Invalid request ID")
		return
	}
	switch {
	case errors.Is(readErr, errTooLong):
		msg := "Response payload size exceeded maximum allowed payload size (" + strconv.Itoa(MaxStreamedResponse) + " bytes)."
		res <- Result{ErrorType: outcome.TypeTooLarge, Payload: outcome.ErrorDoc(outcome.TypeTooLarge, msg), Streamed: n}
		writeError(w, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", msg)
		return
	case readErr != nil:
		res <- Result{ErrorType: outcome.TypeExit, Payload: outcome.ErrorDoc(outcome.TypeExit, "the response stream broke off: "+readErr.Error()), Streamed: n}
		return
	}
	if tr := trailerError(r); tr != nil {
		tr.Streamed = n
		res <- *tr
	} else {
		res <- Result{Streamed: n}
	}
	accepted(w)
}

var errTooLong = errors.New("streamed response too long")

// trailerError is the error a runtime reported in the trailers of its
// answer (Lambda-Runtime-Function-Error-Type, and -Error-Body as base64
// JSON), after a body it may have streamed; nil if none.
func trailerError(r *http.Request) *Result {
	typ := r.Trailer.Get("Lambda-Runtime-Function-Error-Type")
	if typ == "" {
		return nil
	}
	body, err := base64.StdEncoding.DecodeString(r.Trailer.Get("Lambda-Runtime-Function-Error-Body"))
	if err != nil || !json.Valid(body) {
		body = outcome.ErrorDoc(typ, string(body))
	}
	return &Result{ErrorType: typ, Payload: body}
}

func (e *Endpoint) handleError(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	body, _, err := readBody(r, function.MaxResponsePayload)
	if err != nil {
		writeError(w, http.StatusBadRequest, "TruncatedHTTPRequest", err.Error())
		return
	}
	res := e.take(id)
	if res == nil {
		writeError(w, http.StatusBadRequest, "InvalidRequestID", "Invalid request ID")
		return
	}
	res <- errorResult(r, body)
	accepted(w)
}

func (e *Endpoint) handleInitError(w http.ResponseWriter, r *http.Request) {
	body, _, err := readBody(r, function.MaxResponsePayload)
	if err != nil {
		writeError(w, http.StatusBadRequest, "TruncatedHTTPRequest", err.Error())
		return
	}
	select {
	case e.initErr <- errorResult(r, body):
	default: // one init error is enough
	}
	accepted(w)
}

func errorResult(r *http.Request, body []byte) Result {
	typ := r.Header.Get("Lambda-Runtime-Function-Error-Type")
	if len(bytes.TrimSpace(body)) == 0 || !json.Valid(body) {
		if typ == "" {
			typ = outcome.TypeUnknown
		}
		body = outcome.ErrorDoc(typ, string(body))
	}
	if typ == "" {
		typ = outcome.TypeUnhandled
	}
	return Result{Payload: body, ErrorType: typ}
}

var errTruncated = errors.New("request body was truncated")

// readBody reads at most limit bytes; tooLarge reports a longer body.
func readBody(r *http.Request, limit int) (body []byte, tooLarge bool, err error) {
	n := r.ContentLength
	if n > int64(limit) {
		_, _ = io.Copy(io.Discard, r.Body)
		return nil, true, nil
	}
	var buf []byte
	if n >= 0 {
		buf = make([]byte, 0, n+1)
	}
	b := bytes.NewBuffer(buf)
	m, err := b.ReadFrom(io.LimitReader(r.Body, int64(limit)+1))
	if err != nil {
		return nil, false, errTruncated
	}
	if m > int64(limit) {
		_, _ = io.Copy(io.Discard, r.Body)
		return nil, true, nil
	}
	return b.Bytes(), false, nil
}

var acceptedBody = []byte(`{"status":"OK"}`)

func accepted(w http.ResponseWriter) {
	w.Header()["Content-Type"] = []string{"application/json"}
	w.Header()["Date"] = nil
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write(acceptedBody)
}

func writeError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header()["Content-Type"] = []string{"application/json"}
	w.WriteHeader(status)
	_, _ = w.Write(outcome.ErrorDoc(typ, msg))
}

// peerListener drops connections whose peer socket belongs to another uid:
// another instance, or a process of the host.
type peerListener struct {
	net.Listener
	uid   int
	uidOf func(net.Conn) (int, error)
}

func (l *peerListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if uid, err := l.uidOf(c); err == nil && uid == l.uid {
			return c, nil
		}
		_ = c.Close()
	}
}
