// Package pool keeps the instances of one function version: it hands out
// the most recently used idle instance, starts a new one when none is idle,
// and tears down instances idle for longer than the idle timeout, so that
// a function without traffic runs no process at all.
package pool

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/logs"
	"github.com/stratus-faas/stratus/internal/runtimes"
	"github.com/stratus-faas/stratus/internal/sandbox"
)

// Clock is the time source; tests inject a fake one.
type Clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a stoppable timer.
type Timer interface{ Stop() bool }

type realClock struct{}

func (realClock) Now() time.Time                            { return time.Now() }
func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// RealClock is the wall clock.
var RealClock Clock = realClock{}

// Launcher starts instance processes; *sandbox.Launcher is the real one
// (see Sandbox), and tests use a fake whose instances are goroutines.
type Launcher interface {
	// Layout returns the paths an instance will see and reserves its uid;
	// Start takes it over, or Release gives it back.
	Layout(id, codeDir, runtimeDir string, hostNetwork bool) (sandbox.Layout, error)
	Release(sandbox.Layout)
	Start(sandbox.Spec) (Process, error)
}

// Process is one running instance process.
type Process interface {
	// Done is closed when the instance's main process has exited.
	Done() <-chan struct{}
	// Err is the exit status, valid once Done is closed.
	Err() error
	// Kill stops every process of the instance and frees what it held;
	// safe to call more than once.
	Kill()
	// MaxMemoryMB is the instance's peak memory so far.
	MaxMemoryMB() int
	// OOMKilled reports a kill for exceeding the memory limit, once Done.
	OOMKilled() bool
	// RuntimeListener is the Runtime API's listener the launcher made
	// inside the instance's network, when its Layout named one, and how
	// to find a connection's peer uid there.
	RuntimeListener() (net.Listener, func(net.Conn) (int, error))
}

// Sandbox adapts the sandbox's launcher to Launcher.
func Sandbox(l *sandbox.Launcher) Launcher { return sandboxLauncher{l} }

type sandboxLauncher struct{ *sandbox.Launcher }

func (l sandboxLauncher) Start(spec sandbox.Spec) (Process, error) {
	p, err := l.Launcher.Start(spec)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Deps are the parts every pool shares.
type Deps struct {
	Launcher    Launcher
	Runtimes    *runtimes.Set
	Logs        *logs.Sink
	Region      string
	APIEndpoint string
	// HostNetwork names the functions whose instances share the host's
	// network (an operator's choice); nil: none.
	HostNetwork func(function string) bool
	Clock       Clock
	Log         *slog.Logger

	// Bill, when set, is told of provisioned instances kept for a duration.
	Bill func(spec Spec, instances int, d time.Duration)
	// BillEnvironment, when set, is told of a multi-concurrency
	// environment kept for a duration: such environments are billed for
	// the time they live, not per invocation.
	BillEnvironment func(spec Spec, d time.Duration)

	// Credentials, when set, gives an instance of fn the temporary
	// credentials of its execution role (ok false: the role is gone; the
	// instance gets none, and its SDK calls are refused).
	Credentials func(fn *function.Function) (c RoleCredentials, ok bool)

	// Warm, when set, holds pre-started sandboxes that cold starts of
	// Node.js and Python functions take (see warm.go).
	Warm *Warm

	// Live counts instances across all pools.
	Live atomic.Int64
}

// RoleCredentials are what an instance's SDK signs with.
type RoleCredentials struct {
	AccessKeyID, SecretAccessKey, SessionToken string
	Expiration                                 time.Time
}

// credentialMargin is how long before its credentials expire an instance
// is retired (when next released), so that none runs on stale ones:
// environment variables cannot be renewed inside a running process.
const credentialMargin = time.Hour

// Spec is the function version a pool runs.
type Spec struct {
	Function    *function.Function
	Version     string
	CodeDir     string
	OptDir      string // the layers, seen at /opt; "" for none
	IdleTimeout time.Duration
	// ScaleLimit, when set, allows or refuses each new on-demand instance.
	ScaleLimit func() bool
}

// ErrScaleLimit is returned when a new instance would exceed the scaling rate.
var ErrScaleLimit = errors.New("scaling rate exceeded")

// Pool holds the instances of one function version.
type Pool struct {
	spec Spec
	deps *Deps

	mu     sync.Mutex
	idle   []*Instance // a stack: the most recently used is last
	total  int         // idle plus busy
	closed bool
	reaper Timer

	provIdle     []*Instance // idle provisioned instances
	provTarget   int
	provLive     int // provisioned instances alive, idle or busy
	provStarting int
	provFailed   string
	provBilledN  int
	provBilledAt time.Time
	provTimer    Timer

	// Multi-concurrency pools (see shared.go).
	multi  bool
	perEnv int
	envs   []*Instance // live environments, busy or idle
	starts []*start    // environments being started

	bg     sync.WaitGroup  // background starts and watchers
	ctx    context.Context // ends at Close: provisioned starts give up
	cancel context.CancelFunc
}

// New returns an empty pool.
func New(spec Spec, deps *Deps) *Pool {
	p := &Pool{spec: spec, deps: deps, multi: spec.Function.MultiConcurrency(), perEnv: spec.Function.PerEnvironment()}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	return p
}

// Spec is what the pool runs.
func (p *Pool) Spec() Spec { return p.spec }

// Acquire returns an idle instance (warm) or starts a new one (cold). A
// cold start gives up when ctx ends.
func (p *Pool) Acquire(ctx context.Context) (inst *Instance, cold bool, err error) {
	if p.multi {
		return p.acquireShared(ctx)
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, false, err
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, false, ErrClosed
		}
		if n := len(p.provIdle); n > 0 {
			inst = p.provIdle[n-1]
			p.provIdle = p.provIdle[:n-1]
			p.mu.Unlock()
			if inst.Alive() {
				return inst, false, nil
			}
			p.mu.Lock()
			p.provLive--
			p.mu.Unlock()
			p.drop(inst)
			p.fill()
			continue
		}
		n := len(p.idle)
		if n == 0 {
			if p.spec.ScaleLimit != nil && !p.spec.ScaleLimit() {
				p.mu.Unlock()
				return nil, false, ErrScaleLimit
			}
			p.total++
			p.mu.Unlock()
			break
		}
		inst = p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		if inst.Alive() {
			return inst, false, nil
		}
		p.drop(inst)
	}
	// Start outside the lock: cold starts of one function run in parallel.
	inst, err = p.startInstance(ctx, false)
	if err != nil {
		p.mu.Lock()
		p.total--
		p.mu.Unlock()
		return nil, true, err
	}
	p.deps.Live.Add(1)
	return inst, true, nil
}

// Release returns an instance after an invocation. A dead instance, or
// one of a retired pool, is torn down instead.
func (p *Pool) Release(inst *Instance) {
	if p.multi {
		p.releaseShared(inst)
		return
	}
	inst.lastUsed = p.deps.Clock.Now()
	p.mu.Lock()
	if inst.provisioned {
		if p.closed || !inst.Alive() || p.provLive > p.provTarget || inst.retired(inst.lastUsed) {
			p.provLive--
			p.mu.Unlock()
			p.drop(inst)
			p.fill()
			return
		}
		p.provIdle = append(p.provIdle, inst)
		p.mu.Unlock()
		return
	}
	if p.closed || !inst.Alive() || inst.retired(inst.lastUsed) {
		p.mu.Unlock()
		p.drop(inst)
		return
	}
	p.idle = append(p.idle, inst)
	if p.reaper == nil {
		p.reaper = p.deps.Clock.AfterFunc(p.spec.IdleTimeout, p.reap)
	}
	p.mu.Unlock()
}

// Discard tears down an instance that must not be reused.
func (p *Pool) Discard(inst *Instance) {
	inst.dead.Store(true)
	if p.multi {
		p.discardShared(inst)
		return
	}
	if inst.provisioned {
		p.mu.Lock()
		p.provLive--
		p.mu.Unlock()
		p.drop(inst)
		p.fill()
		return
	}
	p.drop(inst)
}

func (p *Pool) drop(inst *Instance) {
	inst.destroy()
	p.deps.Live.Add(-1)
	p.mu.Lock()
	p.total--
	p.mu.Unlock()
}

// reap tears down instances idle for at least the idle timeout and arms
// the timer for the next one to expire. Idle instances sit in the stack
// in order of last use, so the expired ones are at the bottom.
func (p *Pool) reap() {
	now := p.deps.Clock.Now()
	p.mu.Lock()
	k, wait := expiry(len(p.idle), func(i int) time.Time { return p.idle[i].lastUsed }, now, p.spec.IdleTimeout)
	expired := append([]*Instance(nil), p.idle[:k]...)
	p.idle = append([]*Instance(nil), p.idle[k:]...)
	p.reaper = nil
	if len(p.idle) > 0 && !p.closed {
		p.reaper = p.deps.Clock.AfterFunc(wait, p.reap)
	}
	p.mu.Unlock()
	for _, inst := range expired {
		p.drop(inst)
	}
}

// expiry counts the idle instances (ordered oldest first by last use)
// whose idle timeout has passed at now, and how long until the next one's does.
func expiry(n int, lastUsed func(int) time.Time, now time.Time, timeout time.Duration) (expired int, next time.Duration) {
	for expired < n && now.Sub(lastUsed(expired)) >= timeout {
		expired++
	}
	if expired < n {
		next = lastUsed(expired).Add(timeout).Sub(now)
	}
	return expired, next
}

// Counts are how many instances the pool holds: idle (provisioned
// included) and in all.
func (p *Pool) Counts() (idle, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	idle = len(p.idle) + len(p.provIdle)
	for _, inst := range p.envs {
		if inst.inflight == 0 {
			idle++
		}
	}
	return idle, p.total
}

// Close retires the pool: idle instances are torn down now, busy ones
// when they are released.
func (p *Pool) Close() {
	p.billProvisioned()
	p.mu.Lock()
	p.closed = true
	idle := append(p.idle, p.provIdle...)
	p.idle, p.provIdle = nil, nil
	envs := p.closeShared()
	if p.reaper != nil {
		p.reaper.Stop()
		p.reaper = nil
	}
	if p.provTimer != nil {
		p.provTimer.Stop()
		p.provTimer = nil
	}
	p.cancel()
	p.mu.Unlock()
	defer p.bg.Wait()
	var wg sync.WaitGroup
	for _, inst := range idle {
		wg.Go(func() { p.drop(inst) })
	}
	for _, inst := range envs {
		wg.Go(func() { p.dropEnv(inst) })
	}
	wg.Wait()
}
