// Package pooltest is a fake instance launcher for tests of the data
// plane: its instances are goroutines that speak the real Runtime API, over
// HTTP, to the real per-instance endpoint, so pool and invoke are tested
// from the Runtime API up without processes or a sandbox.
package pooltest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stratus-faas/stratus/internal/pool"
	"github.com/stratus-faas/stratus/internal/sandbox"
)

// Reply is what a fake function does with one event.
type Reply struct {
	Body      []byte
	ErrorType string // posted to /error instead of /response
	Exit      bool   // the runtime exits without answering (a crash)
}

// Behaviour is what one instance does.
type Behaviour struct {
	// InitDelay passes before the runtime first asks for an event.
	InitDelay time.Duration
	// InitError, when set, is posted to /init/error; the runtime then exits.
	InitError string
	// Handle answers an event; ctx ends when the instance is killed. Nil
	// echoes the event.
	Handle func(ctx context.Context, event []byte) Reply
}

// Launcher is a fake pool.Launcher.
type Launcher struct {
	// Behave chooses each new instance's behaviour from its spec; nil
	// gives echoing instances.
	Behave func(spec sandbox.Spec) Behaviour

	started atomic.Int64
	mu      sync.Mutex
	live    map[*Process]bool
	client  *http.Client
}

var _ pool.Launcher = (*Launcher)(nil)

// New returns a launcher of echoing instances.
func New() *Launcher {
	return &Launcher{live: map[*Process]bool{}, client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}}
}

// Layout gives the instance's folders as the host sees them (no isolation).
func (l *Launcher) Layout(id, codeDir, runtimeDir string, _ bool) (sandbox.Layout, error) {
	return sandbox.Layout{TaskRoot: codeDir, RuntimeDir: runtimeDir, TmpDir: filepath.Join("/nonexistent", id), UID: -1, HostNetwork: true}, nil
}

// Release does nothing: a fake layout holds nothing.
func (l *Launcher) Release(sandbox.Layout) {}

// Start runs the instance's runtime loop in a goroutine.
func (l *Launcher) Start(spec sandbox.Spec) (pool.Process, error) {
	var api string
	for _, kv := range spec.Env {
		if v, ok := strings.CutPrefix(kv, "AWS_LAMBDA_RUNTIME_API="); ok {
			api = v
		}
	}
	if api == "" {
		return nil, errors.New("pooltest: no AWS_LAMBDA_RUNTIME_API in the environment")
	}
	b := Behaviour{}
	if l.Behave != nil {
		b = l.Behave(spec)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Process{Spec: spec, l: l, cancel: cancel, done: make(chan struct{})}
	l.started.Add(1)
	l.mu.Lock()
	l.live[p] = true
	l.mu.Unlock()
	go func() {
		defer close(p.done)
		// No output: the pool closes its end of the log pipe after Start.
		p.err = l.run(ctx, "http://"+api+"/2018-06-01/runtime", b)
	}()
	return p, nil
}

// Started is how many instances were started.
func (l *Launcher) Started() int { return int(l.started.Load()) }

// Live is the instances not yet killed or exited.
func (l *Launcher) Live() []*Process {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*Process, 0, len(l.live))
	for p := range l.live {
		out = append(out, p)
	}
	return out
}

// errExit is a runtime that exits on purpose.
var errExit = errors.New("exit status 1")

func (l *Launcher) run(ctx context.Context, base string, b Behaviour) error {
	if b.InitDelay > 0 {
		select {
		case <-time.After(b.InitDelay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if b.InitError != "" {
		_ = l.post(ctx, base+"/init/error", b.InitError, []byte(`{"errorMessage":"init failed","errorType":"`+b.InitError+`"}`))
		return errExit
	}
	handle := b.Handle
	if handle == nil {
		handle = func(_ context.Context, ev []byte) Reply { return Reply{Body: ev} }
	}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/invocation/next", nil)
		resp, err := l.client.Do(req)
		if err != nil {
			return err
		}
		event, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
		if resp.StatusCode != http.StatusOK || id == "" {
			return errors.New("runtime api: " + resp.Status)
		}
		r := handle(ctx, event)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if r.Exit {
			return errExit
		}
		if r.ErrorType != "" {
			err = l.post(ctx, base+"/invocation/"+id+"/error", r.ErrorType, r.Body)
		} else {
			err = l.post(ctx, base+"/invocation/"+id+"/response", "", r.Body)
		}
		if err != nil {
			return err
		}
	}
}

func (l *Launcher) post(ctx context.Context, url, errType string, body []byte) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if errType != "" {
		req.Header.Set("Lambda-Runtime-Function-Error-Type", errType)
	}
	resp, err := l.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

// Process is one fake instance.
type Process struct {
	Spec   sandbox.Spec
	l      *Launcher
	cancel context.CancelFunc
	done   chan struct{}
	err    error
	once   sync.Once
}

var _ pool.Process = (*Process)(nil)

// Done is closed when the runtime loop has ended.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is why the loop ended.
func (p *Process) Err() error { return p.err }

// Kill ends the runtime loop and waits for it.
func (p *Process) Kill() {
	p.once.Do(func() {
		p.cancel()
		<-p.done
		p.l.mu.Lock()
		delete(p.l.live, p)
		p.l.mu.Unlock()
	})
}

// Crash ends the instance as if its runtime had exited on its own.
func (p *Process) Crash() {
	p.cancel()
	<-p.done
}

// MaxMemoryMB is a fixed small figure.
func (p *Process) MaxMemoryMB() int { return 1 }

// OOMKilled is never true of a goroutine.
func (p *Process) OOMKilled() bool { return false }

// RuntimeListener is nil: the pool listens on the host's loopback.
func (p *Process) RuntimeListener() (net.Listener, func(net.Conn) (int, error)) { return nil, nil }

// Clock is a manual pool.Clock: time moves only when Advance is called,
// which runs the timers that fall due, in order.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*timer
}

var _ pool.Clock = (*Clock)(nil)

// NewClock starts at a fixed time.
func NewClock() *Clock { return &Clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

type timer struct {
	c       *Clock
	at      time.Time
	f       func()
	stopped bool
}

func (t *timer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc registers f to run when the clock passes d from now.
func (c *Clock) AfterFunc(d time.Duration, f func()) pool.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &timer{c: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

// Advance moves the clock and runs, on the caller's goroutine, every
// timer that falls due (including those the timers set).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		var next *timer
		for _, t := range c.timers {
			if !t.stopped && !t.at.After(end) && (next == nil || t.at.Before(next.at)) {
				next = t
			}
		}
		if next == nil {
			c.now = end
			c.mu.Unlock()
			return
		}
		next.stopped = true
		if next.at.After(c.now) {
			c.now = next.at
		}
		c.mu.Unlock()
		next.f()
	}
}

// WaitUntil polls cond until it holds, failing the test after 10 s.
func WaitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Quiet is a logger that writes nothing.
var Quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// NopPublisher stands in for the logs stream: it takes every publish.
type NopPublisher struct{}

// PublishMsg accepts and drops a message.
func (NopPublisher) PublishMsg(context.Context, *nats.Msg, ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	return &jetstream.PubAck{}, nil
}
