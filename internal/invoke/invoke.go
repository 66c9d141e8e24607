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
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"golang.org/x/time/rate"

	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/meter"
	"github.com/stratus-faas/stratus/internal/pool"
	"github.com/stratus-faas/stratus/internal/registry"
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
	ErrShuttingDown   = errors.New("server is shutting down")
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
	FunctionError   string // "Unhandled" when the function failed
	ExecutedVersion string
	LogResult       string // base64 tail of the log, with LogTail
	RequestID       string
}

// Options configure the invoker.
type Options struct {
	Region         string
	IdleTimeout    time.Duration
	MaxConcurrency int64
	ScaleRate      int // new instances per function per 10 s
}

// Invoker runs invocations.
type Invoker struct {
	reg     *registry.Registry
	deps    *pool.Deps
	meter   *meter.Writer
	metrics *Metrics
	log     *slog.Logger
	opts    Options

	mu    sync.RWMutex
	pools map[string]*pool.Pool // by "name:version"

	inflight   atomic.Int64 // all invocations running
	unreserved atomic.Int64 // those of functions without reserved concurrency
	perFn      sync.Map     // function name -> *atomic.Int64, for reserved concurrency
	scaling    sync.Map     // function name -> *rate.Limiter of new instances
	closing    atomic.Bool
	retiring   sync.WaitGroup
}

// New builds an invoker and subscribes it to registry changes.
func New(reg *registry.Registry, deps *pool.Deps, mw *meter.Writer, metrics *Metrics, log *slog.Logger, opts Options) *Invoker {
	iv := &Invoker{reg: reg, deps: deps, meter: mw, metrics: metrics, log: log, opts: opts, pools: make(map[string]*pool.Pool)}
	deps.Bill = func(spec pool.Spec, n int, d time.Duration) {
		ms := float64(n) * float64(d) / float64(time.Millisecond)
		mw.Add(meter.Record{Function: spec.Function.Name, Version: spec.Version, Start: deps.Clock.Now().Add(-d),
			DurationMs: ms, BilledMs: int64(ms), MemoryMB: spec.Function.MemorySize, Outcome: meter.Provisioned})
	}
	reg.OnChange(iv.functionChanged)
	return iv
}

// functionChanged retires the pools of a function's versions whose code
// or configuration changed or which are gone, so the next request starts
// the current revision.
func (iv *Invoker) functionChanged(name string) {
	var retire []*pool.Pool
	iv.mu.Lock()
	for key, p := range iv.pools {
		spec := p.Spec()
		if spec.Function.Name != name {
			continue
		}
		cur, err := iv.reg.Resolve(name, spec.Version)
		if err != nil || cur.RevisionID != spec.Function.RevisionID {
			delete(iv.pools, key)
			retire = append(retire, p)
		}
	}
	iv.mu.Unlock()
	for _, p := range retire {
		iv.retiring.Go(p.Close)
	}
	iv.reconcileProvisioned(name)
}

// reconcileProvisioned sets every pool of a function to the provisioned
// concurrency its configuration asks for.
func (iv *Invoker) reconcileProvisioned(name string) {
	if iv.closing.Load() {
		return
	}
	conc := iv.reg.Concurrency(name)
	want := map[string]int{}
	fns := map[string]*function.Function{}
	for q, pc := range conc.Provisioned {
		fn, err := iv.reg.ResolvePrimary(name, q)
		if err != nil {
			continue
		}
		want[fn.VersionLabel()] += pc.Requested
		fns[fn.VersionLabel()] = fn
	}
	for v, n := range want {
		p, err := iv.poolFor(context.Background(), fns[v])
		if err != nil {
			iv.log.Warn("provisioned concurrency", "function", name, "version", v, "err", err)
			continue
		}
		p.SetProvisioned(n)
	}
	iv.mu.RLock()
	var off []*pool.Pool
	for _, p := range iv.pools {
		spec := p.Spec()
		if spec.Function.Name == name && want[spec.Version] == 0 && p.Provisioned().Requested > 0 {
			off = append(off, p)
		}
	}
	iv.mu.RUnlock()
	for _, p := range off {
		p.SetProvisioned(0)
	}
}

// ReconcileAll applies the provisioned concurrency of every function, at start.
func (iv *Invoker) ReconcileAll() {
	for _, name := range iv.reg.WithConcurrency() {
		iv.reconcileProvisioned(name)
	}
}

// ProvisionedStatus reports the provisioned instances of the version a
// qualifier names, on this node.
func (iv *Invoker) ProvisionedStatus(name, qualifier string) (pool.ProvisionedStatus, error) {
	fn, err := iv.reg.ResolvePrimary(name, qualifier)
	if err != nil {
		return pool.ProvisionedStatus{}, err
	}
	iv.mu.RLock()
	p := iv.pools[poolKey(fn)]
	iv.mu.RUnlock()
	if p == nil {
		return pool.ProvisionedStatus{}, nil
	}
	return p.Provisioned(), nil
}

func poolKey(fn *function.Function) string { return fn.Name + ":" + fn.VersionLabel() }

func (iv *Invoker) poolFor(ctx context.Context, fn *function.Function) (*pool.Pool, error) {
	key := poolKey(fn)
	iv.mu.RLock()
	p := iv.pools[key]
	iv.mu.RUnlock()
	if p != nil && p.Spec().Function.RevisionID == fn.RevisionID {
		return p, nil
	}
	dir, err := iv.reg.CodeDir(ctx, fn)
	if err != nil {
		return nil, err
	}
	iv.mu.Lock()
	defer iv.mu.Unlock()
	if iv.closing.Load() {
		return nil, ErrShuttingDown
	}
	old := iv.pools[key]
	if old != nil && old.Spec().Function.RevisionID == fn.RevisionID {
		return old, nil
	}
	if old != nil {
		iv.retiring.Go(old.Close)
	}
	p = pool.New(pool.Spec{
		Function:    fn,
		Version:     fn.VersionLabel(),
		CodeDir:     dir,
		IdleTimeout: fn.IdleTimeout(iv.opts.IdleTimeout),
		ScaleLimit:  iv.scaleLimit(fn.Name),
	}, iv.deps)
	iv.pools[key] = p
	return p, nil
}

// Resolve finds the function a request names.
func (iv *Invoker) Resolve(ref, qualifier string) (*function.Function, error) {
	name, q, err := function.ParseRef(ref)
	if err != nil {
		return nil, err
	}
	if qualifier != "" {
		if q != "" && q != qualifier {
			return nil, fmt.Errorf("%w: The derived qualifier from the function name does not match the specified qualifier.", function.ErrInvalid)
		}
		q = qualifier
	}
	return iv.reg.Resolve(name, q)
}

// Invoke runs one request.
func (iv *Invoker) Invoke(ctx context.Context, req Request) (*Response, error) {
	fn, err := iv.Resolve(req.FunctionName, req.Qualifier)
	if err != nil {
		return nil, err
	}
	if len(req.Payload) > function.MaxSyncPayload {
		return nil, fmt.Errorf("%w: Request must be smaller than %d bytes for the InvokeFunction operation", function.ErrTooLarge, function.MaxSyncPayload)
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
		return nil, fmt.Errorf("%w: InvocationType Event goes through the asynchronous queue", ErrUnsupported)
	default:
		return nil, fmt.Errorf("%w: InvocationType must be RequestResponse, Event or DryRun", function.ErrInvalid)
	}
	var clientContext string
	if req.ClientContext != "" {
		b, err := base64.StdEncoding.DecodeString(req.ClientContext)
		if err != nil || len(req.ClientContext) > 3583 {
			return nil, fmt.Errorf("%w: Client context must be a valid Base64-encoded JSON object of at most 3583 bytes", function.ErrInvalid)
		}
		clientContext = string(b)
	}
	if iv.closing.Load() {
		return nil, ErrShuttingDown
	}
	release, err := iv.admit(fn)
	if err != nil {
		return nil, err
	}
	defer release()

	p, err := iv.poolFor(ctx, fn)
	if err != nil {
		return nil, err
	}
	reqID := uuid.NewString()
	// An idle instance may die (its runtime exited after answering) before
	// it takes the next event; such an event runs on another instance.
	for attempt := 0; ; attempt++ {
		inst, cold, err := p.Acquire()
		var initErr *pool.InitError
		if errors.As(err, &initErr) {
			return iv.initFailed(fn, reqID, initErr, req.LogTail), nil
		}
		if errors.Is(err, pool.ErrScaleLimit) {
			iv.metrics.throttle(fn.Name)
			return nil, &ThrottleError{Reason: "FunctionInvocationRateLimitExceeded", RetryAfter: time.Second}
		}
		if err != nil {
			return nil, err
		}
		if resp := iv.run(p, inst, cold, fn, reqID, payload, clientContext, req, attempt < 3); resp != nil {
			return resp, nil
		}
	}
}

// run invokes on inst. It returns nil when the instance died before taking
// the event and retry allows running it elsewhere.
func (iv *Invoker) run(p *pool.Pool, inst *pool.Instance, cold bool, fn *function.Function, reqID string, payload []byte, clientContext string, req Request, retry bool) *Response {
	logs := inst.Logs
	logs.Begin()
	version := fn.VersionLabel()
	logs.Platform("START RequestId: " + reqID + " Version: " + version)
	start := iv.deps.Clock.Now()
	timeout := time.Duration(fn.Timeout) * time.Second
	traceID := req.TraceID
	if traceID == "" {
		traceID = newTraceID(start)
	}
	res, outcome := inst.Invoke(&runtimeapi.Invocation{
		RequestID:     reqID,
		Payload:       payload,
		Deadline:      start.Add(timeout),
		FunctionARN:   function.ARN(iv.opts.Region, fn.Name, req.invokedQualifier()),
		TraceID:       traceID,
		ClientContext: clientContext,
	})
	dur := iv.deps.Clock.Now().Sub(start)
	if outcome == pool.NotStarted {
		if retry {
			p.Discard(inst)
			return nil
		}
		outcome = pool.Crashed
		res = runtimeapi.Result{ErrorType: "Runtime.ExitError", Payload: runtimeapi.ErrorDoc("Runtime.ExitError", "RequestId: "+reqID+" Error: Runtime exited before taking the invocation")}
	}
	maxMem := inst.MaxMemoryMB()
	logs.Settle()

	resp := &Response{Status: 200, ExecutedVersion: version, RequestID: reqID, Payload: res.Payload}
	rec := meter.Record{Function: fn.Name, Version: version, RequestID: reqID, Start: start, MemoryMB: fn.MemorySize, MaxMemMB: maxMem, Cold: cold, Outcome: "success"}
	if cold {
		rec.InitMs = ms(inst.InitDuration)
	}
	switch outcome {
	case pool.FunctionError, pool.Crashed:
		resp.FunctionError = "Unhandled"
		rec.Outcome = "error"
		if outcome == pool.Crashed {
			logs.Platform(reqID + " " + errorMessage(res.Payload))
		}
	case pool.TimedOut:
		resp.FunctionError = "Unhandled"
		rec.Outcome = "timeout"
		msg := "Task timed out after " + strconv.FormatFloat(dur.Seconds(), 'f', 2, 64) + " seconds"
		resp.Payload = runtimeapi.ErrorDoc("Sandbox.Timedout", "RequestId: "+reqID+" Error: "+msg)
		logs.Platform(start.UTC().Format("2006-01-02T15:04:05.000Z") + " " + reqID + " " + msg)
	}
	rec.DurationMs = ms(dur)
	rec.BilledMs = meter.BilledMs(dur)
	logs.Platform("END RequestId: " + reqID)
	logs.Platform(report(reqID, dur, rec.BilledMs, fn.MemorySize, maxMem, rec.InitMs, cold))
	if req.LogTail {
		resp.LogResult = base64.StdEncoding.EncodeToString(logs.Tail())
	}
	if outcome == pool.TimedOut || outcome == pool.Crashed {
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
	logs.Platform("INIT_REPORT Init Duration: " + strconv.FormatFloat(initMs, 'f', 2, 64) + " ms\tPhase: init\tStatus: error\tError Type: " + ie.Result.ErrorType)
	logs.Platform("START RequestId: " + reqID + " Version: " + fn.VersionLabel())
	logs.Platform("END RequestId: " + reqID)
	logs.Platform(report(reqID, 0, 0, fn.MemorySize, 0, initMs, true))
	rec := meter.Record{Function: fn.Name, Version: fn.VersionLabel(), RequestID: reqID, Start: iv.deps.Clock.Now(), MemoryMB: fn.MemorySize, Cold: true, InitMs: initMs, Outcome: "error"}
	iv.meter.Add(rec)
	iv.metrics.observe(rec)
	resp := &Response{Status: 200, Payload: ie.Result.Payload, FunctionError: "Unhandled", ExecutedVersion: fn.VersionLabel(), RequestID: reqID}
	if tail {
		resp.LogResult = base64.StdEncoding.EncodeToString(logs.Tail())
	}
	return resp
}

func report(reqID string, dur time.Duration, billed int64, memMB, maxMemMB int, initMs float64, cold bool) string {
	b := make([]byte, 0, 192)
	b = append(b, "REPORT RequestId: "...)
	b = append(b, reqID...)
	b = append(b, "\tDuration: "...)
	b = strconv.AppendFloat(b, ms(dur), 'f', 2, 64)
	b = append(b, " ms\tBilled Duration: "...)
	b = strconv.AppendInt(b, billed, 10)
	b = append(b, " ms\tMemory Size: "...)
	b = strconv.AppendInt(b, int64(memMB), 10)
	b = append(b, " MB\tMax Memory Used: "...)
	b = strconv.AppendInt(b, int64(maxMemMB), 10)
	b = append(b, " MB\t"...)
	if cold {
		b = append(b, "Init Duration: "...)
		b = strconv.AppendFloat(b, initMs, 'f', 2, 64)
		b = append(b, " ms\t"...)
	}
	return string(b)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func errorMessage(doc []byte) string {
	var e struct {
		ErrorMessage string `json:"errorMessage"`
	}
	_ = json.Unmarshal(doc, &e)
	return e.ErrorMessage
}

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

// scaleLimit is the function's allowance of new instances: ScaleRate per
// 10 seconds, refilled continuously and shared by its versions.
func (iv *Invoker) scaleLimit(name string) func() bool {
	n := max(iv.opts.ScaleRate, 1)
	l, _ := iv.scaling.LoadOrStore(name, rate.NewLimiter(rate.Limit(float64(n)/10), n))
	return l.(*rate.Limiter).Allow
}

// admit counts the invocation against the function's reserved
// concurrency, or else against what the account leaves unreserved.
func (iv *Invoker) admit(fn *function.Function) (release func(), err error) {
	conc := iv.reg.Concurrency(fn.Name)
	var counter *atomic.Int64
	var limit int64
	reason := "ConcurrentInvocationLimitExceeded"
	if conc.Reserved != nil {
		c, _ := iv.perFn.LoadOrStore(fn.Name, new(atomic.Int64))
		counter, limit = c.(*atomic.Int64), int64(*conc.Reserved)
		reason = "ReservedFunctionConcurrentInvocationLimitExceeded"
	} else {
		counter, limit = &iv.unreserved, iv.opts.MaxConcurrency-int64(iv.reg.ReservedTotal())
	}
	if counter.Add(1) > limit {
		counter.Add(-1)
		iv.metrics.throttle(fn.Name)
		iv.meter.Add(meter.Record{Function: fn.Name, Version: fn.VersionLabel(), Start: iv.deps.Clock.Now(), Outcome: "throttle"})
		return nil, &ThrottleError{Reason: reason, RetryAfter: time.Second}
	}
	iv.inflight.Add(1)
	return func() { counter.Add(-1); iv.inflight.Add(-1) }, nil
}

// InFlight is the number of invocations running now.
func (iv *Invoker) InFlight() int64 { return iv.inflight.Load() }

// Close stops admitting work, then retires every pool, tearing down all
// instances. Callers drain in-flight requests first.
func (iv *Invoker) Close() {
	iv.closing.Store(true)
	iv.mu.Lock()
	pools := iv.pools
	iv.pools = map[string]*pool.Pool{}
	iv.mu.Unlock()
	for _, p := range pools {
		iv.retiring.Go(p.Close)
	}
	iv.retiring.Wait()
}

// MaxConcurrency is the account-wide concurrency limit.
func (iv *Invoker) MaxConcurrency() int64 { return iv.opts.MaxConcurrency }
