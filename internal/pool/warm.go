package pool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/logs"
	"github.com/stratus-faas/stratus/internal/runtimeapi"
	"github.com/stratus-faas/stratus/internal/sandbox"
)

// Pre-started sandboxes: for the Node.js and Python runtimes, a few
// sandboxes in which the interpreter and our runtime client are already
// running, built off the cold path and waiting for a function. A cold
// start takes one and specialises it: the function's code appears at the
// task root, its memory limit applies, and its environment reaches the
// runtime client, which then loads the handler as in any start. A sandbox
// is given to one function, once: taken out of the ready set, it is that
// function's instance until it is torn down. Before that it holds no
// code, environment or credentials of anyone's.

// warmMemoryMB bounds a sandbox waiting for a function; specialising sets
// the function's limit.
const warmMemoryMB = 256

// Warm keeps pre-started sandboxes per runtime.
type Warm struct {
	deps *Deps
	per  int

	mu      sync.Mutex
	ready   map[string][]*warmSandbox
	filling map[string]int
	closed  bool
	bg      sync.WaitGroup

	// Used counts the cold starts that took a pre-started sandbox.
	Used atomic.Int64
}

type warmSandbox struct {
	id      string
	lay     sandbox.Layout
	proc    Process
	capture *logs.Capture
	setup   *os.File // the other end of the runtime's descriptor 3, where its environment goes
}

// specialiser is a Process that is a pre-started sandbox.
type specialiser interface {
	Specialise(codeDir string, memoryMB int) error
}

// NewWarm keeps per sandboxes ready for each runtime that has been used
// (a runtime never used holds none). It needs an isolating launcher.
func NewWarm(deps *Deps, per int) *Warm {
	return &Warm{deps: deps, per: per, ready: map[string][]*warmSandbox{}, filling: map[string]int{}}
}

// Ready is how many sandboxes wait, by runtime.
func (w *Warm) Ready() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]int{}
	for rt, l := range w.ready {
		out[rt] = len(l)
	}
	return out
}

// PIDs are the host process ids of the ready sandboxes, by runtime.
func (w *Warm) PIDs() map[string][]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string][]int{}
	for rt, l := range w.ready {
		for _, s := range l {
			if p, ok := s.proc.(interface{ Pid() int }); ok {
				out[rt] = append(out[rt], p.Pid())
			}
		}
	}
	return out
}

// Close tears down the waiting sandboxes; none is made after.
func (w *Warm) Close() {
	w.mu.Lock()
	w.closed = true
	var all []*warmSandbox
	for _, l := range w.ready {
		all = append(all, l...)
	}
	w.ready = map[string][]*warmSandbox{}
	w.mu.Unlock()
	w.bg.Wait()
	for _, s := range all {
		s.destroy()
	}
}

// take returns a sandbox for runtime, or nil, and starts its replacement.
func (w *Warm) take(runtime string) *warmSandbox {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	var s *warmSandbox
	for l := w.ready[runtime]; len(l) > 0; l = w.ready[runtime] {
		s = l[len(l)-1]
		w.ready[runtime] = l[:len(l)-1]
		if alive(s.proc) {
			break
		}
		go s.destroy()
		s = nil
	}
	w.fillLocked(runtime)
	return s
}

func alive(p Process) bool {
	select {
	case <-p.Done():
		return false
	default:
		return true
	}
}

// fillLocked starts sandboxes until per are ready or starting.
func (w *Warm) fillLocked(runtime string) {
	for len(w.ready[runtime])+w.filling[runtime] < w.per && !w.closed {
		w.filling[runtime]++
		w.bg.Go(func() {
			s, err := w.start(runtime)
			w.mu.Lock()
			w.filling[runtime]--
			if err == nil && !w.closed {
				w.ready[runtime] = append(w.ready[runtime], s)
				s = nil
			}
			w.mu.Unlock()
			if err != nil {
				w.deps.Log.Warn("could not pre-start a sandbox", "runtime", runtime, "err", err)
			}
			if s != nil {
				s.destroy()
			}
		})
	}
}

// start builds a sandbox running runtime's interpreter and client.
func (w *Warm) start(runtime string) (*warmSandbox, error) {
	d := w.deps
	id := uuid.New()
	hexID := fmt.Sprintf("%x", id[:])
	lay, err := d.Launcher.Layout(hexID, "", d.Runtimes.Dir, false)
	if err != nil {
		return nil, err
	}
	if lay.UID < 0 || lay.HostNetwork {
		d.Launcher.Release(lay)
		return nil, errors.New("pre-started sandboxes need isolated instances with networks of their own")
	}
	argv, err := d.Runtimes.Command(runtime, lay.TaskRoot, lay.RuntimeDir)
	if err != nil {
		d.Launcher.Release(lay)
		return nil, err
	}
	argv = append(argv, "--warm")
	capture, err := logs.NewCapture(logs.Stream{}, logs.Format{}, d.Logs)
	if err != nil {
		d.Launcher.Release(lay)
		return nil, err
	}
	// A socket pair, not a pipe: the runtime says on it when it waits.
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		d.Launcher.Release(lay)
		capture.Close()
		return nil, err
	}
	wr, r := os.NewFile(uintptr(fds[0]), "setup"), os.NewFile(uintptr(fds[1]), "setup-runtime")
	var sdk string
	if strings.HasPrefix(runtime, "nodejs") {
		sdk = d.Runtimes.NodeSDK
	}
	proc, err := d.Launcher.Start(sandbox.Spec{
		ID:   hexID,
		Argv: argv,
		// Only what the interpreter reads as it starts; the function's
		// own environment replaces it.
		Env:        []string{"PATH=" + d.Runtimes.SearchPath(runtime), "LANG=en_US.UTF-8", "TZ=:UTC", "HOME=" + lay.TmpDir, "TMPDIR=" + lay.TmpDir},
		Layout:     lay,
		RuntimeDir: d.Runtimes.Dir,
		NodeSDK:    sdk,
		MemoryMB:   warmMemoryMB,
		TmpMB:      function.DefaultEphemeral,
		Output:     capture.Writer(),
		Warm:       true,
		Setup:      r,
	})
	_ = r.Close()
	capture.Started()
	if err != nil {
		_ = wr.Close()
		capture.Close()
		return nil, err
	}
	s := &warmSandbox{id: hexID, lay: lay, proc: proc, capture: capture, setup: wr}
	// Ready once the interpreter has loaded the client and waits; one that
	// does not get there in the init timeout is given up.
	stop := time.AfterFunc(function.InitTimeout, proc.Kill)
	var b [1]byte
	_, err = io.ReadFull(wr, b[:])
	stop.Stop()
	if err != nil {
		s.destroy()
		return nil, fmt.Errorf("the runtime did not start: %w", err)
	}
	return s, nil
}

func (s *warmSandbox) destroy() {
	_ = s.setup.Close()
	s.proc.Kill()
	s.capture.Close()
}

// errSpecialise marks a pre-started sandbox that could not be given to
// the function: the start goes on with a new sandbox instead.
var errSpecialise = errors.New("specialise")

// takeWarm is a pre-started sandbox for this pool's function, if it can
// have one: a Node.js or Python function with the default /tmp, no
// layers, its own network, one invocation at a time.
func (p *Pool) takeWarm() *warmSandbox {
	w, fn := p.deps.Warm, p.spec.Function
	if w == nil || p.multi || p.spec.OptDir != "" || fn.EphemeralStorage != function.DefaultEphemeral ||
		(p.deps.HostNetwork != nil && p.deps.HostNetwork(fn.Name)) {
		return nil
	}
	if f := function.Family(fn.Runtime); f != function.FamilyPython && f != function.FamilyNode {
		return nil
	}
	return w.take(fn.Runtime)
}

// specialise makes a pre-started sandbox this pool's instance.
func (p *Pool) specialise(ctx context.Context, s *warmSandbox, provisioned bool) (*Instance, error) {
	fail := func(err error) (*Instance, error) {
		s.destroy()
		return nil, fmt.Errorf("%w: %w", errSpecialise, err)
	}
	sp, ok := s.proc.(specialiser)
	if !ok {
		return fail(errors.New("not a pre-started sandbox"))
	}
	start := p.deps.Clock.Now()
	fn := p.spec.Function
	stream := start.UTC().Format("2006/01/02") + "/[" + p.spec.Version + "]" + s.id
	s.capture.SetStream(logs.Stream{Function: fn.Name, Instance: s.id, Name: stream}, logFormat(fn.Logging))
	if err := sp.Specialise(p.spec.CodeDir, fn.MemorySize); err != nil {
		return fail(err)
	}
	var ep *runtimeapi.Endpoint
	apiAddr := s.lay.RuntimeAPI
	if ln, uidOf := s.proc.RuntimeListener(); ln != nil {
		ep = runtimeapi.ServeChecked(ln, s.lay.UID, uidOf, p.perEnv)
	} else {
		var err error
		if ep, err = runtimeapi.Listen(s.lay.UID, p.perEnv); err != nil {
			return fail(err)
		}
		apiAddr = ep.Addr()
	}
	env, retireAt := p.withCredentials(p.env(apiAddr, s.lay, stream, provisioned))
	vars := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	data, _ := json.Marshal(vars)
	_, err := s.setup.Write(data)
	_ = s.setup.Close()
	if err != nil {
		ep.Close()
		s.proc.Kill()
		s.capture.Close()
		return nil, fmt.Errorf("%w: hand over the environment: %w", errSpecialise, err)
	}
	p.deps.Warm.Used.Add(1)
	inst := &Instance{ID: s.id, Logs: s.capture, proc: s.proc, ep: ep, provisioned: provisioned, retireAt: retireAt}
	return p.awaitInit(ctx, inst, start)
}
