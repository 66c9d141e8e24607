package pool_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/logs"
	"github.com/stratus-faas/stratus/internal/outcome"
	"github.com/stratus-faas/stratus/internal/pool"
	"github.com/stratus-faas/stratus/internal/pool/pooltest"
	"github.com/stratus-faas/stratus/internal/runtimeapi"
	"github.com/stratus-faas/stratus/internal/runtimes"
	"github.com/stratus-faas/stratus/internal/sandbox"
)

type fixture struct {
	l     *pooltest.Launcher
	clock *pooltest.Clock
	deps  *pool.Deps
}

func newFixture(t *testing.T, clock pool.Clock) *fixture {
	t.Helper()
	rts, err := runtimes.Install(t.TempDir(), runtimes.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sink := logs.NewSink(pooltest.NopPublisher{}, pooltest.Quiet)
	t.Cleanup(sink.Close)
	f := &fixture{l: pooltest.New()}
	if c, ok := clock.(*pooltest.Clock); ok {
		f.clock = c
	}
	if clock == nil {
		clock = pool.RealClock
	}
	f.deps = &pool.Deps{Launcher: f.l, Runtimes: rts, Logs: sink, Region: "us-east-1", APIEndpoint: "http://127.0.0.1:1", Clock: clock, Log: pooltest.Quiet}
	return f
}

func testFunction(name string) *function.Function {
	return &function.Function{Config: function.Config{Name: name, Runtime: "provided.al2023", Handler: "bootstrap", Timeout: 3, MemorySize: 128, EphemeralStorage: 512}, RevisionID: "rev-1"}
}

func (f *fixture) pool(t *testing.T, spec pool.Spec) *pool.Pool {
	t.Helper()
	if spec.Function == nil {
		spec.Function = testFunction("fn")
	}
	if spec.Version == "" {
		spec.Version = "$LATEST"
	}
	if spec.IdleTimeout == 0 {
		spec.IdleTimeout = time.Minute
	}
	spec.CodeDir = t.TempDir()
	p := pool.New(spec, f.deps)
	t.Cleanup(p.Close)
	return p
}

func invocation(id string, payload string, timeout time.Duration) *runtimeapi.Invocation {
	return &runtimeapi.Invocation{RequestID: id, Payload: []byte(payload), Deadline: time.Now().Add(timeout), FunctionARN: "arn:aws:lambda:us-east-1:000000000000:function:fn"}
}

func mustAcquire(t *testing.T, p *pool.Pool) (*pool.Instance, bool) {
	t.Helper()
	inst, cold, err := p.Acquire(context.Background())
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	return inst, cold
}

func TestColdWarmAndMostRecentlyUsed(t *testing.T) {
	f := newFixture(t, nil)
	p := f.pool(t, pool.Spec{})
	a, cold := mustAcquire(t, p)
	if !cold || a.InitDuration <= 0 {
		t.Fatalf("first acquire: cold %v, init %v", cold, a.InitDuration)
	}
	res, err := a.Invoke(context.Background(), invocation("r1", `{"x":1}`, time.Second))
	if err != nil || res.Outcome != outcome.Success || string(res.Payload) != `{"x":1}` {
		t.Fatalf("invoke: %v %+v", err, res)
	}
	p.Release(a)
	again, cold := mustAcquire(t, p)
	if cold || again != a {
		t.Fatalf("second acquire: cold %v, same instance %v", cold, again == a)
	}
	b, _ := mustAcquire(t, p)
	c, _ := mustAcquire(t, p)
	// Released a, b, c: the next is c, the most recently used.
	p.Release(a)
	p.Release(b)
	p.Release(c)
	if got, _ := mustAcquire(t, p); got != c {
		t.Fatal("not the most recently used instance")
	}
	if idle, total := p.Counts(); idle != 2 || total != 3 {
		t.Fatalf("counts idle %d total %d, want 2 and 3", idle, total)
	}
	if n := f.l.Started(); n != 3 {
		t.Fatalf("%d instances started, want 3", n)
	}
	if live := f.deps.Live.Load(); live != 3 {
		t.Fatalf("live %d, want 3", live)
	}
}

func TestReapIdle(t *testing.T) {
	clock := pooltest.NewClock()
	f := newFixture(t, clock)
	p := f.pool(t, pool.Spec{IdleTimeout: time.Minute})
	a, _ := mustAcquire(t, p)
	b, _ := mustAcquire(t, p)
	p.Release(a)
	clock.Advance(30 * time.Second)
	p.Release(b)
	clock.Advance(30 * time.Second) // a has been idle a minute, b half
	if idle, total := p.Counts(); idle != 1 || total != 1 {
		t.Fatalf("after a's timeout: idle %d total %d, want 1 and 1", idle, total)
	}
	clock.Advance(30 * time.Second)
	if idle, total := p.Counts(); idle != 0 || total != 0 || f.deps.Live.Load() != 0 || len(f.l.Live()) != 0 {
		t.Fatalf("after b's timeout: idle %d total %d live %d processes %d", idle, total, f.deps.Live.Load(), len(f.l.Live()))
	}
	// Zero instances: the next request starts one.
	if _, cold := mustAcquire(t, p); !cold {
		t.Fatal("acquire after scale to zero was warm")
	}
}

func TestScaleToZeroRace(t *testing.T) {
	clock := pooltest.NewClock()
	f := newFixture(t, clock)
	p := f.pool(t, pool.Spec{IdleTimeout: time.Minute})
	for i := range 50 {
		inst, _ := mustAcquire(t, p)
		p.Release(inst)
		var wg sync.WaitGroup
		wg.Go(func() { clock.Advance(time.Minute) })
		wg.Go(func() {
			inst, _, err := p.Acquire(context.Background())
			if err != nil {
				t.Errorf("round %d: acquire: %v", i, err)
				return
			}
			res, err := inst.Invoke(context.Background(), invocation(fmt.Sprint("r", i), `{}`, 2*time.Second))
			if err != nil || res.Outcome != outcome.Success {
				t.Errorf("round %d: invoke while reaping: %v %+v", i, err, res)
			}
			p.Release(inst)
		})
		wg.Wait()
	}
}

func TestScaleLimit(t *testing.T) {
	f := newFixture(t, nil)
	var allow atomic.Bool
	p := f.pool(t, pool.Spec{ScaleLimit: allow.Load})
	if _, _, err := p.Acquire(context.Background()); !errors.Is(err, pool.ErrScaleLimit) {
		t.Fatalf("acquire over the scale limit: %v", err)
	}
	allow.Store(true)
	inst, _ := mustAcquire(t, p)
	p.Release(inst)
	allow.Store(false)
	// A warm instance needs no new allowance.
	if _, cold := mustAcquire(t, p); cold {
		t.Fatal("warm acquire counted as cold")
	}
	if idle, total := p.Counts(); idle != 0 || total != 1 {
		t.Fatalf("counts %d %d", idle, total)
	}
}

func TestOutcomes(t *testing.T) {
	f := newFixture(t, nil)
	f.l.Behave = func(sandbox.Spec) pooltest.Behaviour {
		return pooltest.Behaviour{Handle: func(ctx context.Context, ev []byte) pooltest.Reply {
			switch string(ev) {
			case `"error"`:
				return pooltest.Reply{ErrorType: "MyError", Body: []byte(`{"errorType":"MyError","errorMessage":"no"}`)}
			case `"crash"`:
				return pooltest.Reply{Exit: true}
			case `"hang"`:
				<-ctx.Done()
			}
			return pooltest.Reply{Body: ev}
		}}
	}
	p := f.pool(t, pool.Spec{})
	tests := []struct {
		event   string
		timeout time.Duration
		cancel  bool
		want    outcome.Outcome
		typ     string
		alive   bool
	}{
		{`"ok"`, time.Second, false, outcome.Success, "", true},
		{`"error"`, time.Second, false, outcome.Error, "MyError", true},
		{`"crash"`, time.Second, false, outcome.Error, outcome.TypeExit, false},
		{`"hang"`, 150 * time.Millisecond, false, outcome.Timeout, outcome.TypeTimedOut, false},
		{`"hang"`, 5 * time.Second, true, outcome.Cancelled, outcome.TypeShuttingDown, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%v", tt.event, tt.want), func(t *testing.T) {
			inst, _ := mustAcquire(t, p)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel {
				time.AfterFunc(100*time.Millisecond, cancel)
			}
			res, err := inst.Invoke(ctx, invocation("r-"+tt.event, tt.event, tt.timeout))
			if err != nil || res.Outcome != tt.want || res.ErrorType != tt.typ || inst.Alive() != tt.alive {
				t.Fatalf("invoke: %v %+v alive %v", err, res, inst.Alive())
			}
			if res.Outcome == outcome.Error && !tt.alive && !strings.Contains(string(res.Payload), "Runtime exited") {
				t.Fatalf("crash document: %s", res.Payload)
			}
			if tt.alive {
				p.Release(inst)
			} else {
				p.Discard(inst)
			}
		})
	}
	// Dead instances are gone, never handed out again.
	if idle, total := p.Counts(); idle != 0 || total != 0 || len(f.l.Live()) != 0 || f.l.Started() != 3 {
		t.Fatalf("counts idle %d total %d, processes %d, started %d", idle, total, len(f.l.Live()), f.l.Started())
	}
}

func TestDeadIdleInstanceIsSkipped(t *testing.T) {
	f := newFixture(t, nil)
	p := f.pool(t, pool.Spec{})
	a, _ := mustAcquire(t, p)
	p.Release(a)
	for _, proc := range f.l.Live() {
		proc.Crash()
	}
	b, cold := mustAcquire(t, p)
	if !cold || b == a {
		t.Fatal("a dead idle instance was handed out")
	}
	if res, err := b.Invoke(context.Background(), invocation("r", `{}`, time.Second)); err != nil || res.Outcome != outcome.Success {
		t.Fatalf("invoke on the replacement: %v %+v", err, res)
	}
}

func TestInitFailures(t *testing.T) {
	f := newFixture(t, nil)
	f.l.Behave = func(spec sandbox.Spec) pooltest.Behaviour {
		return pooltest.Behaviour{InitError: "Runtime.ImportModuleError"}
	}
	p := f.pool(t, pool.Spec{})
	_, cold, err := p.Acquire(context.Background())
	ie, ok := errors.AsType[*pool.InitError](err)
	if !ok || !cold || ie.Result.ErrorType != "Runtime.ImportModuleError" || ie.Result.Outcome != outcome.Error {
		t.Fatalf("init error: %v", err)
	}
	if idle, total := p.Counts(); idle != 0 || total != 0 || f.deps.Live.Load() != 0 {
		t.Fatalf("after a failed start: idle %d total %d live %d", idle, total, f.deps.Live.Load())
	}
}

func TestAcquireCancelledDuringColdStart(t *testing.T) {
	f := newFixture(t, nil)
	f.l.Behave = func(sandbox.Spec) pooltest.Behaviour { return pooltest.Behaviour{InitDelay: time.Hour} }
	p := f.pool(t, pool.Spec{})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, _, err := p.Acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled cold start: %v", err)
	}
	if _, total := p.Counts(); total != 0 || len(f.l.Live()) != 0 || f.deps.Live.Load() != 0 {
		t.Fatalf("a cancelled start left an instance: total %d processes %d", total, len(f.l.Live()))
	}
}

func TestProvisioned(t *testing.T) {
	f := newFixture(t, nil)
	var billed atomic.Int64
	f.deps.Bill = func(_ pool.Spec, n int, _ time.Duration) { billed.Add(int64(n)) }
	p := f.pool(t, pool.Spec{})
	p.SetProvisioned(2)
	pooltest.WaitUntil(t, "two provisioned instances ready", func() bool { return p.Provisioned().Ready == 2 })
	// Provisioned instances are handed out first, warm.
	inst, cold := mustAcquire(t, p)
	if cold || f.l.Started() != 2 {
		t.Fatalf("acquire with provisioned ready: cold %v, started %d", cold, f.l.Started())
	}
	p.Release(inst)
	// One dies while idle: it is replaced.
	f.l.Live()[0].Crash()
	pooltest.WaitUntil(t, "the dead one replaced", func() bool { return f.l.Started() == 3 && p.Provisioned().Ready == 2 })
	// Fewer: the surplus goes.
	p.SetProvisioned(1)
	if st := p.Provisioned(); st.Ready != 1 || st.Requested != 1 {
		t.Fatalf("after lowering: %+v", st)
	}
	if billed.Load() == 0 {
		t.Fatal("provisioned time was not billed")
	}
	// A function that cannot start reports why and does not spin.
	f.l.Behave = func(sandbox.Spec) pooltest.Behaviour { return pooltest.Behaviour{InitError: "Runtime.ExitError"} }
	q := f.pool(t, pool.Spec{Function: testFunction("broken")})
	q.SetProvisioned(1)
	pooltest.WaitUntil(t, "the failure reported", func() bool { return q.Provisioned().Failed != "" })
	if st := q.Provisioned(); !strings.HasPrefix(st.Failed, "FUNCTION_ERROR_INIT_FAILURE: ") || st.Ready != 0 {
		t.Fatalf("failed provisioning: %+v", st)
	}
}

func TestCloseWithBusyInstance(t *testing.T) {
	f := newFixture(t, nil)
	p := f.pool(t, pool.Spec{})
	busy, _ := mustAcquire(t, p)
	idle, _ := mustAcquire(t, p)
	p.Release(idle)
	p.Close()
	if len(f.l.Live()) != 1 {
		t.Fatalf("after close: %d processes, want the busy one", len(f.l.Live()))
	}
	if _, _, err := p.Acquire(context.Background()); !errors.Is(err, pool.ErrClosed) {
		t.Fatalf("acquire on a closed pool: %v", err)
	}
	p.Release(busy)
	if len(f.l.Live()) != 0 || f.deps.Live.Load() != 0 {
		t.Fatalf("released into a closed pool: %d processes, live %d", len(f.l.Live()), f.deps.Live.Load())
	}
}

// TestLateDeadlineTimer: a deadline timer that fires long after the
// deadline (the server was paused) lets an answer already on its way
// count, instead of reporting a timeout; a function that really runs on
// still times out.
func TestLateDeadlineTimer(t *testing.T) {
	f := newFixture(t, nil)
	f.l.Behave = func(sandbox.Spec) pooltest.Behaviour {
		return pooltest.Behaviour{Handle: func(ctx context.Context, ev []byte) pooltest.Reply {
			if string(ev) == `"hang"` {
				<-ctx.Done()
			}
			time.Sleep(50 * time.Millisecond)
			return pooltest.Reply{Body: ev}
		}}
	}
	p := f.pool(t, pool.Spec{})
	inst, _ := mustAcquire(t, p)
	late := &runtimeapi.Invocation{RequestID: "late", Payload: []byte(`"ok"`), Deadline: time.Now().Add(-time.Second)}
	if res, err := inst.Invoke(context.Background(), late); err != nil || res.Outcome != outcome.Success {
		t.Fatalf("answer after a late timer: %v %+v", err, res)
	}
	p.Release(inst)
	inst, _ = mustAcquire(t, p)
	hang := &runtimeapi.Invocation{RequestID: "hang", Payload: []byte(`"hang"`), Deadline: time.Now().Add(-time.Second)}
	if res, err := inst.Invoke(context.Background(), hang); err != nil || res.Outcome != outcome.Timeout {
		t.Fatalf("no answer after a late timer: %v %+v", err, res)
	}
	p.Discard(inst)
}
