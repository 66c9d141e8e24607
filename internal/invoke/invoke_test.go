package invoke_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/invoke"
	"github.com/stratus-faas/stratus/internal/logs"
	"github.com/stratus-faas/stratus/internal/meter"
	"github.com/stratus-faas/stratus/internal/outcome"
	"github.com/stratus-faas/stratus/internal/pool"
	"github.com/stratus-faas/stratus/internal/pool/pooltest"
	"github.com/stratus-faas/stratus/internal/registry"
	"github.com/stratus-faas/stratus/internal/runtimes"
	"github.com/stratus-faas/stratus/internal/sandbox"
)

// catalog is an in-memory registry: functions by name, each revision's
// code in a folder named for the revision.
type catalog struct {
	root string
	mu   sync.Mutex
	fns  map[string]*function.Function
	conc map[string]*function.Concurrency
	// codeWait, when set, blocks CodeDir (a slow download).
	codeWait chan struct{}
}

func (c *catalog) Resolve(name, qualifier string) (*function.Function, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fn := c.fns[name]
	if fn == nil {
		return nil, fmt.Errorf("%w: Function not found: %s", registry.ErrNotFound, name)
	}
	return fn, nil
}

func (c *catalog) ResolvePrimary(name, qualifier string) (*function.Function, error) {
	return c.Resolve(name, qualifier)
}

func (c *catalog) Concurrency(name string) *function.Concurrency {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cc := c.conc[name]; cc != nil {
		return cc
	}
	return &function.Concurrency{Function: name}
}

func (c *catalog) ReservedTotal() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, cc := range c.conc {
		if cc.Reserved != nil {
			n += *cc.Reserved
		}
	}
	return n
}

func (c *catalog) WithConcurrency() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for n := range c.conc {
		out = append(out, n)
	}
	return out
}

func (c *catalog) CodeDir(ctx context.Context, fn *function.Function) (string, error) {
	c.mu.Lock()
	wait := c.codeWait
	c.mu.Unlock()
	if wait != nil {
		select {
		case <-wait:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	dir := filepath.Join(c.root, fn.Name, fn.RevisionID)
	return dir, os.MkdirAll(dir, 0o755)
}

func (c *catalog) OptDir(context.Context, *function.Function) (string, error) { return "", nil }

func (c *catalog) put(fn *function.Function) {
	c.mu.Lock()
	c.fns[fn.Name] = fn
	c.mu.Unlock()
}

func (c *catalog) setConcurrency(cc *function.Concurrency) {
	c.mu.Lock()
	c.conc[cc.Function] = cc
	c.mu.Unlock()
}

type records struct {
	mu  sync.Mutex
	all []meter.Record
}

func (r *records) Add(rec meter.Record) {
	r.mu.Lock()
	r.all = append(r.all, rec)
	r.mu.Unlock()
}

func (r *records) outcomes() map[outcome.Outcome]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[outcome.Outcome]int{}
	for _, rec := range r.all {
		out[rec.Outcome]++
	}
	return out
}

type fixture struct {
	cat   *catalog
	l     *pooltest.Launcher
	pools *pool.Set
	rec   *records
	iv    *invoke.Invoker
}

func newFixture(t *testing.T, maxConcurrency int64, scaleRate int) *fixture {
	t.Helper()
	rts, err := runtimes.Install(t.TempDir(), runtimes.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sink := logs.NewSink(pooltest.NopPublisher{}, pooltest.Quiet)
	t.Cleanup(sink.Close)
	f := &fixture{cat: &catalog{root: t.TempDir(), fns: map[string]*function.Function{}, conc: map[string]*function.Concurrency{}}, l: pooltest.New(), rec: &records{}}
	deps := &pool.Deps{Launcher: f.l, Runtimes: rts, Logs: sink, Region: "us-east-1", APIEndpoint: "http://127.0.0.1:1", Clock: pool.RealClock, Log: pooltest.Quiet,
		Bill: invoke.BillProvisioned(f.rec, pool.RealClock)}
	f.pools = pool.NewSet(f.cat, deps, pool.SetOptions{IdleTimeout: time.Minute, ScaleRate: scaleRate})
	t.Cleanup(f.pools.Close)
	metrics := invoke.NewMetrics(prometheus.NewRegistry(), func() float64 { return 0 }, func() float64 { return 0 })
	f.iv = invoke.New(f.cat, f.pools, pool.RealClock, f.rec, metrics, pooltest.Quiet, invoke.Options{Region: "us-east-1", MaxConcurrency: maxConcurrency})
	// Instances answer with their code folder's name (the revision) and the event.
	f.l.Behave = func(spec sandbox.Spec) pooltest.Behaviour {
		rev := filepath.Base(spec.CodeDir)
		return pooltest.Behaviour{Handle: func(ctx context.Context, ev []byte) pooltest.Reply {
			switch {
			case strings.Contains(string(ev), "sleep"):
				select {
				case <-time.After(300 * time.Millisecond):
				case <-ctx.Done():
				}
			case strings.Contains(string(ev), "hang"):
				<-ctx.Done()
			case strings.Contains(string(ev), "crash"):
				return pooltest.Reply{Exit: true}
			case strings.Contains(string(ev), "fail"):
				return pooltest.Reply{ErrorType: "Boom", Body: []byte(`{"errorType":"Boom","errorMessage":"failed"}`)}
			}
			return pooltest.Reply{Body: []byte(`{"rev":"` + rev + `","event":` + string(ev) + `}`)}
		}}
	}
	return f
}

func fn(name, rev string, timeout int) *function.Function {
	return &function.Function{Config: function.Config{Name: name, Runtime: "provided.al2023", Handler: "bootstrap", Timeout: timeout, MemorySize: 128, EphemeralStorage: 512}, RevisionID: rev}
}

func (f *fixture) invoke(t *testing.T, ctx context.Context, name, payload string) (*invoke.Response, error) {
	t.Helper()
	return f.iv.Invoke(ctx, invoke.Request{FunctionName: name, Payload: []byte(payload)})
}

func TestOutcomesAndRecords(t *testing.T) {
	f := newFixture(t, 100, 100)
	f.cat.put(fn("f", "r1", 1))
	tests := []struct {
		payload string
		want    outcome.Outcome
		typ     string
		body    string
	}{
		{`{"a":1}`, outcome.Success, "", `"rev":"r1"`},
		{`{"fail":1}`, outcome.Error, "Boom", `"errorMessage":"failed"`},
		{`{"crash":1}`, outcome.Error, outcome.TypeExit, `Runtime exited with error`},
		{`{"hang":1}`, outcome.Timeout, outcome.TypeTimedOut, `Task timed out after 1.`},
		{`{"a":2}`, outcome.Success, "", `"rev":"r1"`},
	}
	for _, tt := range tests {
		resp, err := f.invoke(t, context.Background(), "f", tt.payload)
		if err != nil || resp.Outcome != tt.want || resp.ErrorType != tt.typ || !strings.Contains(string(resp.Payload), tt.body) {
			t.Fatalf("%s: %v %+v %s", tt.payload, err, resp, resp.Payload)
		}
		if (resp.FunctionError() == "Unhandled") != tt.want.Failed() {
			t.Fatalf("%s: FunctionError %q", tt.payload, resp.FunctionError())
		}
	}
	got := f.rec.outcomes()
	if got[outcome.Success] != 2 || got[outcome.Error] != 2 || got[outcome.Timeout] != 1 {
		t.Fatalf("records: %v", got)
	}
	// A timeout is billed its timeout, not the moments after it.
	f.rec.mu.Lock()
	for _, rec := range f.rec.all {
		if rec.Outcome == outcome.Timeout && rec.BilledMs != 1000 {
			t.Errorf("a 1 s timeout billed %d ms (ran %.2f ms)", rec.BilledMs, rec.DurationMs)
		}
	}
	f.rec.mu.Unlock()
	// The crash and the timeout each cost an instance.
	if n := f.l.Started(); n != 3 {
		t.Fatalf("%d instances started, want 3", n)
	}
}

func TestInitFailure(t *testing.T) {
	f := newFixture(t, 100, 100)
	f.cat.put(fn("broken", "r1", 3))
	f.l.Behave = func(sandbox.Spec) pooltest.Behaviour {
		return pooltest.Behaviour{InitError: "Runtime.ImportModuleError"}
	}
	resp, err := f.invoke(t, context.Background(), "broken", `{}`)
	if err != nil || resp.Outcome != outcome.Error || resp.ErrorType != "Runtime.ImportModuleError" || resp.FunctionError() != "Unhandled" {
		t.Fatalf("init failure: %v %+v", err, resp)
	}
	f.rec.mu.Lock()
	rec := f.rec.all[0]
	f.rec.mu.Unlock()
	if !rec.Cold || rec.Outcome != outcome.Error {
		t.Fatalf("record of an init failure: %+v", rec)
	}
}

func TestCancelled(t *testing.T) {
	f := newFixture(t, 100, 100)
	f.cat.put(fn("f", "r1", 30))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	resp, err := f.invoke(t, ctx, "f", `{"hang":1}`)
	if err != nil || resp.Outcome != outcome.Cancelled {
		t.Fatalf("cancelled invoke: %v %+v", err, resp)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("cancellation took %v", d)
	}
	// The instance is gone; the next request gets a new one.
	resp, err = f.invoke(t, context.Background(), "f", `{}`)
	if err != nil || resp.Outcome != outcome.Success || f.l.Started() != 2 {
		t.Fatalf("after a cancellation: %v %+v started %d", err, resp, f.l.Started())
	}
}

func TestConcurrencyLimits(t *testing.T) {
	f := newFixture(t, 3, 100)
	f.cat.put(fn("reserved", "r1", 5))
	f.cat.put(fn("open", "r1", 5))
	one := 1
	f.cat.setConcurrency(&function.Concurrency{Function: "reserved", Reserved: &one})
	release := make(chan struct{})
	f.l.Behave = func(spec sandbox.Spec) pooltest.Behaviour {
		return pooltest.Behaviour{Handle: func(ctx context.Context, ev []byte) pooltest.Reply {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return pooltest.Reply{Body: ev}
		}}
	}
	var wg sync.WaitGroup
	results := make(chan error, 4)
	for _, name := range []string{"reserved", "open", "open"} {
		wg.Go(func() {
			_, err := f.invoke(t, context.Background(), name, `{}`)
			results <- err
		})
	}
	pooltest.WaitUntil(t, "three in flight", func() bool { return f.iv.InFlight() == 3 })
	// Reserved 1 of 3: the function has used its one; the others share 2.
	var thr *invoke.ThrottleError
	if _, err := f.invoke(t, context.Background(), "reserved", `{}`); !errors.As(err, &thr) || thr.Reason != "ReservedFunctionConcurrentInvocationLimitExceeded" {
		t.Fatalf("over reserved: %v", err)
	}
	if _, err := f.invoke(t, context.Background(), "open", `{}`); !errors.As(err, &thr) || thr.Reason != "ConcurrentInvocationLimitExceeded" {
		t.Fatalf("over unreserved: %v", err)
	}
	close(release)
	wg.Wait()
	close(results)
	for err := range results {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := f.rec.outcomes(); got[outcome.Throttle] != 2 || got[outcome.Success] != 3 {
		t.Fatalf("records: %v", got)
	}
	if f.iv.InFlight() != 0 {
		t.Fatalf("in flight after all returned: %d", f.iv.InFlight())
	}
}

func TestScaleRateRefusal(t *testing.T) {
	f := newFixture(t, 100, 2) // 2 new instances per 10 s
	f.cat.put(fn("f", "r1", 5))
	var wg sync.WaitGroup
	var ok, throttled atomic.Int32
	for range 4 {
		wg.Go(func() {
			_, err := f.invoke(t, context.Background(), "f", `{"sleep":1}`)
			var thr *invoke.ThrottleError
			switch {
			case err == nil:
				ok.Add(1)
			case errors.As(err, &thr) && thr.Reason == "FunctionInvocationRateLimitExceeded":
				throttled.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 2 || throttled.Load() != 2 || f.l.Started() != 2 {
		t.Fatalf("ok %d throttled %d started %d", ok.Load(), throttled.Load(), f.l.Started())
	}
}

// TestDeployDuringTraffic: requests keep coming while the function's code
// changes. None fails, each runs wholly on one revision, and once the
// change is known every new request runs the new one.
func TestDeployDuringTraffic(t *testing.T) {
	f := newFixture(t, 1000, 1000)
	f.cat.put(fn("f", "r1", 5))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var served atomic.Int64
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				payload := fmt.Sprintf(`{"w":%d,"i":%d}`, w, i)
				resp, err := f.invoke(t, context.Background(), "f", payload)
				if err != nil || resp.Outcome != outcome.Success {
					t.Errorf("invoke during deploy: %v %+v", err, resp)
					return
				}
				body := string(resp.Payload)
				if !strings.Contains(body, payload) || !(strings.Contains(body, `"rev":"r1"`) || strings.Contains(body, `"rev":"r2"`)) {
					t.Errorf("answer %s to %s", body, payload)
				}
				served.Add(1)
			}
		})
	}
	pooltest.WaitUntil(t, "traffic on r1", func() bool { return served.Load() > 50 })
	f.cat.put(fn("f", "r2", 5))
	f.pools.Changed("f")
	for range 20 {
		resp, err := f.invoke(t, context.Background(), "f", `{}`)
		if err != nil || !strings.Contains(string(resp.Payload), `"rev":"r2"`) {
			t.Fatalf("after the deploy: %v %s", err, resp.Payload)
		}
	}
	close(stop)
	wg.Wait()
	// The old revision's instances are all gone once their requests end.
	pooltest.WaitUntil(t, "r1 instances torn down", func() bool {
		for _, p := range f.l.Live() {
			if filepath.Base(p.Spec.CodeDir) == "r1" {
				return false
			}
		}
		return true
	})
}

// TestChangedDoesNotWaitForCode: the registry's watcher tells the set of a
// change; provisioned concurrency that needs a slow download happens on
// the set's own worker.
func TestChangedDoesNotWaitForCode(t *testing.T) {
	f := newFixture(t, 100, 100)
	f.cat.put(fn("big", "r1", 5))
	f.cat.mu.Lock()
	f.cat.codeWait = make(chan struct{})
	f.cat.mu.Unlock()
	f.cat.setConcurrency(&function.Concurrency{Function: "big", Provisioned: map[string]*function.Provisioned{"1": {Requested: 2}}})
	returned := make(chan struct{})
	go func() {
		f.pools.Changed("big")
		close(returned)
	}()
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("Changed waited for the code download")
	}
	close(f.cat.codeWait)
	big, _ := f.cat.Resolve("big", "")
	pooltest.WaitUntil(t, "provisioned instances", func() bool { return f.iv.ProvisionedStatus(big).Ready == 2 })
	resp, err := f.invoke(t, context.Background(), "big", `{}`)
	if err != nil || resp.Outcome != outcome.Success || f.l.Started() != 2 {
		t.Fatalf("invoke on provisioned: %v %+v started %d", err, resp, f.l.Started())
	}
	// Provisioning off: the instances go.
	f.cat.setConcurrency(&function.Concurrency{Function: "big"})
	f.pools.Changed("big")
	pooltest.WaitUntil(t, "provisioned instances gone", func() bool { return f.iv.ProvisionedStatus(big).Requested == 0 })
}

func TestRequestErrors(t *testing.T) {
	f := newFixture(t, 100, 100)
	f.cat.put(fn("f", "r1", 5))
	tests := []struct {
		req  invoke.Request
		want error
	}{
		{invoke.Request{FunctionName: "nobody"}, registry.ErrNotFound},
		{invoke.Request{FunctionName: "f", Payload: []byte("not json")}, invoke.ErrInvalidContent},
		{invoke.Request{FunctionName: "f", Payload: make([]byte, function.MaxSyncPayload+1)}, function.ErrTooLarge},
		{invoke.Request{FunctionName: "f", Type: "Sometimes"}, function.ErrInvalid},
		{invoke.Request{FunctionName: "f", ClientContext: "!!"}, function.ErrInvalid},
	}
	for _, tt := range tests {
		if _, err := f.iv.Invoke(context.Background(), tt.req); !errors.Is(err, tt.want) {
			t.Errorf("%+v: %v, want %v", tt.req.Type, err, tt.want)
		}
	}
	resp, err := f.iv.Invoke(context.Background(), invoke.Request{FunctionName: "f", Type: invoke.DryRun})
	if err != nil || resp.Status != 204 || f.l.Started() != 0 {
		t.Fatalf("dry run: %v %+v", err, resp)
	}
	f.iv.Close()
	if _, err := f.invoke(t, context.Background(), "f", `{}`); !errors.Is(err, invoke.ErrShuttingDown) {
		t.Fatalf("after close: %v", err)
	}
}
