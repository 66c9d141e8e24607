// Package invoke is the invocation path: it resolves a function, checks
// the payload, admits the request within the concurrency limit, runs it on
// an instance of the function's pool, enforces the timeout, and records
// the outcome for logs, usage and metrics.
package invoke

import (
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/stratus-faas/stratus/internal/function"
	plogs "github.com/stratus-faas/stratus/internal/logs"
	"github.com/stratus-faas/stratus/internal/meter"
	"github.com/stratus-faas/stratus/internal/outcome"
	"github.com/stratus-faas/stratus/internal/pool"
	"github.com/stratus-faas/stratus/internal/recursion"
	"github.com/stratus-faas/stratus/internal/runtimeapi"
)

// Invocation types.
const (
	RequestResponse = "RequestResponse"
	Event           = "Event"
	DryRun          = "DryRun"
)

// Errors the wire layer maps.
var (
	ErrInvalidContent = errors.New("could not parse request body into json")
	ErrUnsupported    = errors.New("unsupported invocation")
	ErrShuttingDown   = pool.ErrShuttingDown
	// ErrRecursiveLoop: the event has run the function recursion.Limit
	// times already and the function's RecursiveLoop is not Allow.
	ErrRecursiveLoop = errors.New("recursive invocation loop stopped")
)

// ThrottleError is a request refused over a concurrency limit.
type ThrottleError struct {
	Reason     string
	RetryAfter time.Duration
}

func (e *ThrottleError) Error() string { return "Rate Exceeded." }

// Request is one Invoke call.
type Request struct {
	FunctionName  string // name, name:qualifier, or ARN
	Qualifier     string
	Payload       []byte
	Type          string
	LogTail       bool
	ClientContext string // base64 JSON, as sent in X-Amz-Client-Context
	TraceID       string
	// Stream, when set, takes a response the function streams as it
	// comes (InvokeWithResponseStream, streaming function URLs).
	Stream runtimeapi.Sink
}

// invokedQualifier is the qualifier the caller named, for the invoked ARN.
func (r Request) invokedQualifier() string {
	if r.Qualifier != "" {
		return r.Qualifier
	}
	if _, q, err := function.ParseRef(r.FunctionName); err == nil {
		return q
	}
	return ""
}

// Response is what the caller gets back.
type Response struct {
	Status          int
	Payload         []byte
	Outcome         outcome.Outcome
	ErrorType       string // Lambda's error type, when Outcome is not Success
	ExecutedVersion string
	LogResult       string // base64 tail of the log, with LogTail
	RequestID       string
	// Streamed counts the bytes that went to Request.Stream; Payload is
	// then empty unless the stream failed (the error document).
	Streamed int64
}

// FunctionError is X-Amz-Function-Error: "Unhandled" when the function
// failed, as Lambda reports every runtime-reported error.
func (r *Response) FunctionError() string {
	if r.Outcome.Failed() || r.Outcome == outcome.Cancelled {
		return outcome.TypeUnhandled
	}
	return ""
}

// Functions is what the invoker reads of the function registry;
// *registry.Registry is the real one.
type Functions interface {
	Resolve(name, qualifier string) (*function.Function, error)
	Concurrency(name string) *function.Concurrency
	ReservedTotal() int
}

// Recorder takes usage records; *meter.Writer is the real one.
type Recorder interface{ Add(meter.Record) }

// Options configure the invoker.
type Options struct {
	Region         string
	MaxConcurrency int64
	// Limits, when set, holds the concurrency limits for a whole cluster
	// (*cluster.Slots); else they are this node's alone.
	Limits Limits
	// ProvisionedElsewhere counts a version's ready provisioned instances
	// on the cluster's other nodes ("function:version").
	ProvisionedElsewhere func(key string) int
}

// Limits holds concurrency limits shared with other nodes.
type Limits interface {
	Acquire(key string, limit int64) bool
	Release(key string)
}

// Invoker runs invocations on the node's pools.
type Invoker struct {
	fns     Functions
	pools   *pool.Set
	clock   pool.Clock
	meter   Recorder
	metrics *Metrics
	log     *slog.Logger
	limited *limitedLog
	opts    Options

	inflight   atomic.Int64 // all invocations running
	unreserved atomic.Int64 // those of functions without reserved concurrency
	perFn      sync.Map     // function name -> *atomic.Int64, for reserved concurrency
	closing    atomic.Bool
}

// New builds an invoker running on pools.
func New(fns Functions, pools *pool.Set, clock pool.Clock, rec Recorder, metrics *Metrics, log *slog.Logger, opts Options) *Invoker {
	return &Invoker{fns: fns, pools: pools, clock: clock, meter: rec, metrics: metrics, log: log, limited: newLimitedLog(log, clock), opts: opts}
}

// BillProvisioned is the pools' Bill hook: provisioned instances kept for
// a duration become a usage record.
func BillProvisioned(rec Recorder, clock pool.Clock) func(spec pool.Spec, n int, d time.Duration) {
	return func(spec pool.Spec, n int, d time.Duration) {
		ms := float64(n) * float64(d) / float64(time.Millisecond)
		rec.Add(meter.Record{Function: spec.Function.Name, Version: spec.Version, Start: clock.Now().Add(-d),
			DurationMs: ms, BilledMs: int64(ms), MemoryMB: spec.Function.MemorySize, Outcome: outcome.Provisioned})
	}
}

// BillEnvironment records a multi-concurrency environment's time as usage.
func BillEnvironment(rec Recorder, clock pool.Clock) func(spec pool.Spec, d time.Duration) {
	return func(spec pool.Spec, d time.Duration) {
		ms := float64(d) / float64(time.Millisecond)
		rec.Add(meter.Record{Function: spec.Function.Name, Version: spec.Version, Start: clock.Now().Add(-d),
			DurationMs: ms, BilledMs: int64(math.Ceil(ms)), MemoryMB: spec.Function.MemorySize, Outcome: outcome.Environment})
	}
}

// Resolve finds the function a request names.
func (iv *Invoker) Resolve(ref, qualifier string) (*function.Function, error) {
	name, q, err := function.ParseRef(ref)
	if err != nil {
		return nil, err
	}
	if qualifier != "" {
		if q != "" && q != qualifier {
			return nil, function.Errorf(function.ErrInvalid, "The derived qualifier from the function name does not match the specified qualifier.")
		}
		q = qualifier
	}
	return iv.fns.Resolve(name, q)
}

// StopLoop reports whether an event carrying trace is stopped at the
// function fn names, its recursive loop limit reached, and counts it so:
// event sources that batch events ask it of each before invoking.
func (iv *Invoker) StopLoop(trace, fn string) bool {
	name, _, err := function.ParseRef(fn)
	if err != nil {
		return false
	}
	d := recursion.Depth(trace, name)
	if !recursion.Stops(d, iv.fns.Concurrency(name).RecursiveLoop) {
		return false
	}
	iv.metrics.loopStopped(name)
	iv.limited.Warn(name, "recursive loop stopped: the event has run the function "+strconv.Itoa(d)+" times (PutFunctionRecursionConfig --recursive-loop Allow lets it go on)",
		"function", name)
	return true
}

// Invoke runs one request.
func (iv *Invoker) Invoke(ctx context.Context, req Request) (*Response, error) {
	fn, err := iv.Resolve(req.FunctionName, req.Qualifier)
	if err != nil {
		return nil, err
	}
	if len(req.Payload) > function.MaxSyncPayload {
		return nil, function.Errorf(function.ErrTooLarge, "Request must be smaller than %d bytes for the InvokeFunction operation", function.MaxSyncPayload)
	}
	payload := req.Payload
	if len(payload) == 0 {
		payload = []byte("{}")
	} else if !json.Valid(payload) {
		return nil, ErrInvalidContent
	}
	switch req.Type {
	case "", RequestResponse:
	case DryRun:
		return &Response{Status: 204, ExecutedVersion: fn.VersionLabel()}, nil
	case Event:
		// The API layer queues these (package events); here is no queue.
		return nil, function.Errorf(ErrUnsupported, "InvocationType Event goes through the asynchronous queue")
	default:
		return nil, function.Errorf(function.ErrInvalid, "InvocationType must be RequestResponse, Event or DryRun")
	}
	var clientContext string
	if req.ClientContext != "" {
		b, err := base64.StdEncoding.DecodeString(req.ClientContext)
		if err != nil || len(req.ClientContext) > 3583 {
			return nil, function.Errorf(function.ErrInvalid, "Client context must be a valid Base64-encoded JSON object of at most 3583 bytes")
		}
		clientContext = string(b)
	}
	if iv.closing.Load() {
		return nil, ErrShuttingDown
	}
	if req.TraceID == "" {
		req.TraceID = newTraceID(iv.clock.Now())
	}
	if iv.StopLoop(req.TraceID, fn.Name) {
		return nil, ErrRecursiveLoop
	}
	req.TraceID = recursion.Next(req.TraceID, fn.Name)
	release, err := iv.admit(fn)
	if err != nil {
		return nil, err
	}
	defer release()

	reqID := uuid.NewString()
	// An idle instance may die (its runtime exited after answering) before
	// it takes the next event; such an event runs on another instance. A
	// pool retired by a deploy while acquiring sends the request to the
	// function's current pool.
	for attempt := 0; ; attempt++ {
		p, err := iv.pools.For(ctx, fn)
		if err != nil {
			return nil, err
		}
		fn = p.Spec().Function
		inst, cold, err := p.Acquire(ctx)
		if ie, ok := errors.AsType[*pool.InitError](err); ok {
			return iv.initFailed(fn, reqID, ie, req.LogTail), nil
		}
		switch {
		case errors.Is(err, pool.ErrScaleLimit):
			iv.metrics.throttle(fn.Name)
			return nil, &ThrottleError{Reason: "FunctionInvocationRateLimitExceeded", RetryAfter: time.Second}
		case errors.Is(err, pool.ErrClosed) && attempt < 3:
			continue
		case err != nil:
			return nil, err
		}
		if resp := iv.run(ctx, p, inst, cold, fn, reqID, payload, clientContext, req, attempt < 3); resp != nil {
			return resp, nil
		}
	}
}

// run invokes on inst. It returns nil when the instance died before taking
// the event and retry allows running it elsewhere.
func (iv *Invoker) run(ctx context.Context, p *pool.Pool, inst *pool.Instance, cold bool, fn *function.Function, reqID string, payload []byte, clientContext string, req Request, retry bool) *Response {
	logs := inst.Logs
	version := fn.VersionLabel()
	logs.Begin(reqID, version)
	start := iv.clock.Now()
	timeout := time.Duration(fn.Timeout) * time.Second
	traceID := req.TraceID
	res, err := inst.Invoke(ctx, &runtimeapi.Invocation{
		RequestID:     reqID,
		Payload:       payload,
		Deadline:      start.Add(timeout),
		FunctionARN:   function.ARN(iv.opts.Region, fn.Name, req.invokedQualifier()),
		TraceID:       traceID,
		ClientContext: clientContext,
		Stream:        req.Stream,
	})
	dur := iv.clock.Now().Sub(start)
	if errors.Is(err, pool.ErrNotStarted) {
		if retry {
			p.Discard(inst)
			return nil
		}
		res = pool.Result{Outcome: outcome.Error, ErrorType: outcome.TypeExit,
			Payload: outcome.ErrorDoc(outcome.TypeExit, "RequestId: "+reqID+" Error: Runtime exited before taking the invocation")}
	}
	maxMem := inst.MaxMemoryMB()
	logs.Settle()

	resp := &Response{Status: 200, ExecutedVersion: version, RequestID: reqID, Payload: res.Payload, Outcome: res.Outcome, ErrorType: res.ErrorType, Streamed: res.Streamed}
	rec := meter.Record{Function: fn.Name, Version: version, RequestID: reqID, Start: start, MemoryMB: fn.MemorySize, MaxMemMB: maxMem, Cold: cold, Outcome: res.Outcome, Streamed: res.Streamed, Shared: fn.MultiConcurrency()}
	if cold {
		rec.InitMs = ms(inst.InitDuration)
	}
	dead := !inst.Alive()
	if res.ErrorType == outcome.TypeOutOfMemory {
		iv.metrics.oom(fn.Name)
	}
	if res.Outcome.Failed() {
		// The operator hears of failures (at most one line a minute for
		// each function and kind); the function's own log has them all.
		kind := res.ErrorType
		if kind == "" {
			kind = string(res.Outcome)
		}
		iv.limited.Warn(fn.Name+"/"+kind, "function "+string(res.Outcome), "function", fn.Name, "version", version, "request", reqID, "error_type", kind)
	}
	switch res.Outcome {
	case outcome.Error:
		if dead {
			logs.Platform(reqID + " " + outcome.ParseDoc(res.Payload).Message)
		}
	case outcome.Timeout:
		msg := "Task timed out after " + strconv.FormatFloat(dur.Seconds(), 'f', 2, 64) + " seconds"
		resp.Payload = outcome.ErrorDoc(outcome.TypeTimedOut, "RequestId: "+reqID+" Error: "+msg)
		logs.Platform(start.UTC().Format("2006-01-02T15:04:05.000Z") + " " + reqID + " " + msg)
	case outcome.Cancelled:
		logs.Platform(reqID + " invocation cancelled: the caller went away or the server is stopping")
	}
	rec.DurationMs = ms(dur)
	rec.BilledMs = meter.BilledMs(dur)
	if res.Outcome == outcome.Timeout {
		// A timed-out run is billed its timeout, as on Lambda, not the
		// moments it took to notice and stop it.
		rec.BilledMs = min(rec.BilledMs, int64(fn.Timeout)*1000)
	}
	logs.Report(plogs.Report{RequestID: reqID, Duration: dur, BilledMs: rec.BilledMs, MemoryMB: fn.MemorySize, MaxMemMB: maxMem,
		InitMs: rec.InitMs, Cold: cold, Status: reportStatus(res.Outcome), ErrorType: res.ErrorType})
	if req.LogTail {
		resp.LogResult = base64.StdEncoding.EncodeToString(logs.Tail(reqID))
	}
	if dead {
		p.Discard(inst)
	} else {
		p.Release(inst)
	}
	iv.meter.Add(rec)
	iv.metrics.observe(rec)
	return resp
}

// initFailed answers a request whose cold start failed, as Lambda does:
// a function error carrying the init error document.
func (iv *Invoker) initFailed(fn *function.Function, reqID string, ie *pool.InitError, tail bool) *Response {
	logs := ie.Logs
	initMs := ms(ie.Duration)
	iv.limited.Warn(fn.Name+"/init", "function init failed", "function", fn.Name, "version", fn.VersionLabel(), "request", reqID, "error_type", ie.Result.ErrorType)
	logs.InitReport(ie.Duration, ie.Result.ErrorType)
	logs.BeginAfterInit(reqID, fn.VersionLabel())
	logs.Report(plogs.Report{RequestID: reqID, MemoryMB: fn.MemorySize, InitMs: initMs, Cold: true, Status: "error", ErrorType: ie.Result.ErrorType})
	rec := meter.Record{Function: fn.Name, Version: fn.VersionLabel(), RequestID: reqID, Start: iv.clock.Now(), MemoryMB: fn.MemorySize, Cold: true, InitMs: initMs, Outcome: outcome.Error}
	iv.meter.Add(rec)
	iv.metrics.observe(rec)
	resp := &Response{Status: 200, Payload: ie.Result.Payload, Outcome: outcome.Error, ErrorType: ie.Result.ErrorType, ExecutedVersion: fn.VersionLabel(), RequestID: reqID}
	if tail {
		resp.LogResult = base64.StdEncoding.EncodeToString(logs.Tail(reqID))
	}
	return resp
}

// reportStatus is platform.report's status of an outcome.
func reportStatus(o outcome.Outcome) string {
	switch {
	case o == outcome.Timeout:
		return "timeout"
	case o.Failed():
		return "error"
	}
	return "success"
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// newTraceID makes an X-Ray style trace header.
func newTraceID(t time.Time) string {
	var r [20]byte
	_, _ = crand.Read(r[:])
	b := make([]byte, 0, 64)
	b = append(b, "Root=1-"...)
	b = fmt.Appendf(b, "%08x", uint32(t.Unix()))
	b = append(b, '-')
	b = hex.AppendEncode(b, r[:12])
	b = append(b, ";Parent="...)
	b = hex.AppendEncode(b, r[12:])
	b = append(b, ";Sampled=0"...)
	return string(b)
}

// admit counts the invocation against the function's reserved
// concurrency, or else against what the account leaves unreserved.
func (iv *Invoker) admit(fn *function.Function) (release func(), err error) {
	if iv.opts.Limits != nil {
		return iv.admitShared(fn)
	}
	conc := iv.fns.Concurrency(fn.Name)
	var counter *atomic.Int64
	var limit int64
	reason := "ConcurrentInvocationLimitExceeded"
	if conc.Reserved != nil {
		c, _ := iv.perFn.LoadOrStore(fn.Name, new(atomic.Int64))
		counter, limit = c.(*atomic.Int64), int64(*conc.Reserved)
		reason = "ReservedFunctionConcurrentInvocationLimitExceeded"
	} else {
		counter, limit = &iv.unreserved, iv.opts.MaxConcurrency-int64(iv.fns.ReservedTotal())
	}
	if counter.Add(1) > limit {
		counter.Add(-1)
		return nil, iv.throttled(fn, reason)
	}
	iv.inflight.Add(1)
	return func() { counter.Add(-1); iv.inflight.Add(-1) }, nil
}

// admitShared counts the invocation against limits the cluster shares.
func (iv *Invoker) admitShared(fn *function.Function) (release func(), err error) {
	conc := iv.fns.Concurrency(fn.Name)
	key, limit, reason := "account", iv.opts.MaxConcurrency-int64(iv.fns.ReservedTotal()), "ConcurrentInvocationLimitExceeded"
	if conc.Reserved != nil {
		key, limit, reason = "function."+fn.Name, int64(*conc.Reserved), "ReservedFunctionConcurrentInvocationLimitExceeded"
	}
	if !iv.opts.Limits.Acquire(key, limit) {
		return nil, iv.throttled(fn, reason)
	}
	iv.inflight.Add(1)
	return func() { iv.opts.Limits.Release(key); iv.inflight.Add(-1) }, nil
}

func (iv *Invoker) throttled(fn *function.Function, reason string) error {
	iv.metrics.throttle(fn.Name)
	iv.meter.Add(meter.Record{Function: fn.Name, Version: fn.VersionLabel(), Start: iv.clock.Now(), Outcome: outcome.Throttle})
	iv.limited.Warn(fn.Name+"/throttle", "invocation throttled", "function", fn.Name, "reason", reason)
	return &ThrottleError{Reason: reason, RetryAfter: time.Second}
}

// InFlight is the number of invocations running now.
func (iv *Invoker) InFlight() int64 { return iv.inflight.Load() }

// Close stops admitting work. In-flight invocations end as their contexts do.
func (iv *Invoker) Close() { iv.closing.Store(true) }

// ProvisionedStatus reports the provisioned instances of the version a
// qualifier names, on every node of the cluster.
func (iv *Invoker) ProvisionedStatus(fn *function.Function) pool.ProvisionedStatus {
	st := iv.pools.Provisioned(fn)
	if iv.opts.ProvisionedElsewhere != nil {
		st.Ready += iv.opts.ProvisionedElsewhere(fn.Name + ":" + fn.VersionLabel())
	}
	return st
}

// MaxConcurrency is the account-wide concurrency limit.
func (iv *Invoker) MaxConcurrency() int64 { return iv.opts.MaxConcurrency }
