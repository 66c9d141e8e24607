package pool

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/logs"
	"github.com/stratus-faas/stratus/internal/outcome"
	"github.com/stratus-faas/stratus/internal/runtimeapi"
	"github.com/stratus-faas/stratus/internal/sandbox"
)

// Instance is one execution environment: a process, its Runtime API
// endpoint and its log capture. It runs one invocation at a time.
type Instance struct {
	ID           string
	Logs         *logs.Capture
	InitDuration time.Duration

	proc        Process
	ep          *runtimeapi.Endpoint
	lastUsed    time.Time
	dead        atomic.Bool
	provisioned bool      // started ahead of requests; never reaped for idleness
	retireAt    time.Time // zero: never; else replaced when released after it

	// Multi-concurrency environments, guarded by the pool's mu.
	inflight int       // invocations running or reserved on it
	draining bool      // takes no new invocations; goes when inflight is 0
	billedAt time.Time // its time is billed up to here
}

// retired reports whether the instance is due for replacement at now.
func (i *Instance) retired(now time.Time) bool {
	return !i.retireAt.IsZero() && !now.Before(i.retireAt)
}

// Result is how one invocation on an instance ended.
type Result struct {
	Outcome   outcome.Outcome
	Payload   []byte // the function's answer, or the error document
	ErrorType string // set unless Outcome is Success
	Streamed  int64  // bytes of the answer streamed to the invocation's sink
}

// InitError is returned by Acquire when a new instance failed to start
// its runtime; Result is the error document for the caller.
type InitError struct {
	Result   Result
	Duration time.Duration
	Logs     *logs.Capture
}

func (e *InitError) Error() string { return "init failed: " + e.Result.ErrorType }

// Errors of Acquire and Invoke.
var (
	// ErrClosed: the pool was retired (a deploy, a deletion) while
	// acquiring; the invocation belongs on the function's current pool.
	ErrClosed = errors.New("pool closed")
	// ErrNotStarted: the instance exited before taking the invocation,
	// which can therefore run on another instance.
	ErrNotStarted = errors.New("instance exited before taking the invocation")
)

// Timing of a late deadline timer: a server that was paused (SIGSTOP, a
// stalled host) wakes to timers that fired late, while answers that came
// in during the pause still wait to be read. A timer that fires more than
// pauseSlack late gives such an answer up to pauseGrace to arrive.
const (
	pauseSlack = 100 * time.Millisecond
	pauseGrace = 500 * time.Millisecond
)

func initFailure(typ, msg string, d time.Duration, capture *logs.Capture) *InitError {
	return &InitError{Result: Result{Outcome: outcome.Error, ErrorType: typ, Payload: outcome.ErrorDoc(typ, msg)}, Duration: d, Logs: capture}
}

func (p *Pool) startInstance(ctx context.Context, provisioned bool) (*Instance, error) {
	if w := p.takeWarm(); w != nil {
		inst, err := p.specialise(ctx, w, provisioned)
		if err == nil || !errors.Is(err, errSpecialise) {
			return inst, err
		}
		p.deps.Log.Warn("a pre-started sandbox could not be given to the function; starting a new one", "function", p.spec.Function.Name, "err", err)
	}
	id := uuid.New()
	hexID := fmt.Sprintf("%x", id[:])
	hostNet := p.deps.HostNetwork != nil && p.deps.HostNetwork(p.spec.Function.Name)
	lay, err := p.deps.Launcher.Layout(hexID, p.spec.CodeDir, p.deps.Runtimes.Dir, hostNet)
	if err != nil {
		return nil, err
	}
	argv, err := p.deps.Runtimes.Command(p.spec.Function.Runtime, lay.TaskRoot, lay.RuntimeDir)
	if err != nil {
		p.deps.Launcher.Release(lay)
		return nil, err
	}
	// The endpoint answers the instance's uid alone (any caller when not
	// isolated). In a network of the instance's own, the launcher makes
	// its listener there; otherwise it is on the host's loopback.
	var ep *runtimeapi.Endpoint
	apiAddr := lay.RuntimeAPI
	if apiAddr == "" {
		if ep, err = runtimeapi.Listen(lay.UID, p.spec.Function.PerEnvironment()); err != nil {
			p.deps.Launcher.Release(lay)
			return nil, fmt.Errorf("runtime api: %w", err)
		}
		apiAddr = ep.Addr()
	}
	closeEP := func() {
		if ep != nil {
			ep.Close()
		}
	}
	start := p.deps.Clock.Now()
	stream := start.UTC().Format("2006/01/02") + "/[" + p.spec.Version + "]" + hexID
	capture, err := logs.NewCapture(logs.Stream{Function: p.spec.Function.Name, Instance: hexID, Name: stream}, logFormat(p.spec.Function.Logging), p.deps.Logs)
	if err != nil {
		p.deps.Launcher.Release(lay)
		closeEP()
		return nil, err
	}
	if p.multi {
		capture.Shared()
	}
	env, retireAt := p.withCredentials(p.env(apiAddr, lay, stream, provisioned))
	proc, err := p.deps.Launcher.Start(sandbox.Spec{
		ID:         hexID,
		Argv:       argv,
		Env:        env,
		Layout:     lay,
		CodeDir:    p.spec.CodeDir,
		OptDir:     p.spec.OptDir,
		NodeSDK:    p.nodeSDK(),
		RuntimeDir: p.deps.Runtimes.Dir,
		MemoryMB:   p.spec.Function.MemorySize,
		TmpMB:      p.spec.Function.EphemeralStorage,
		Output:     capture.Writer(),
	})
	capture.Started()
	if err != nil {
		closeEP()
		capture.Close()
		return nil, err
	}
	if ep == nil {
		ln, uidOf := proc.RuntimeListener()
		if ln == nil {
			proc.Kill()
			capture.Close()
			return nil, errors.New("runtime api: the launcher made no listener")
		}
		ep = runtimeapi.ServeChecked(ln, lay.UID, uidOf, p.spec.Function.PerEnvironment())
	}
	inst := &Instance{ID: hexID, Logs: capture, proc: proc, ep: ep, provisioned: provisioned, retireAt: retireAt}
	return p.awaitInit(ctx, inst, start)
}

// awaitInit waits for a started instance's runtime to ask for its first
// event (init done), to fail, or to exit.
func (p *Pool) awaitInit(ctx context.Context, inst *Instance, start time.Time) (*Instance, error) {
	ep, proc, capture := inst.ep, inst.proc, inst.Logs
	timer := time.NewTimer(function.InitTimeout)
	defer timer.Stop()
	select {
	case <-ep.Ready():
		inst.InitDuration = p.deps.Clock.Now().Sub(start)
		return inst, nil
	case r := <-ep.InitError():
		inst.destroy()
		return nil, &InitError{Result: fromRuntime(r), Duration: p.deps.Clock.Now().Sub(start), Logs: capture}
	case <-proc.Done():
		// The runtime may have reported an init error just before exiting.
		select {
		case r := <-ep.InitError():
			inst.destroy()
			return nil, &InitError{Result: fromRuntime(r), Duration: p.deps.Clock.Now().Sub(start), Logs: capture}
		default:
		}
		inst.destroy()
		return nil, initFailure(outcome.TypeExit, "Runtime exited with error: "+exitText(proc.Err()), p.deps.Clock.Now().Sub(start), capture)
	case <-timer.C:
		inst.destroy()
		msg := "INIT phase timed out after " + strconv.FormatFloat(function.InitTimeout.Seconds(), 'f', 2, 64) + " seconds"
		return nil, initFailure(outcome.TypeTimedOut, msg, function.InitTimeout, capture)
	case <-ctx.Done():
		inst.destroy()
		return nil, ctx.Err()
	}
}

// fromRuntime is the result a runtime reported.
func fromRuntime(r runtimeapi.Result) Result {
	if r.ErrorType == "" {
		return Result{Outcome: outcome.Success, Payload: r.Payload, Streamed: r.Streamed}
	}
	return Result{Outcome: outcome.Error, Payload: r.Payload, ErrorType: r.ErrorType, Streamed: r.Streamed}
}

func (p *Pool) env(apiAddr string, lay sandbox.Layout, stream string, provisioned bool) []string {
	initType := "on-demand"
	if provisioned {
		initType = "provisioned-concurrency"
	}
	fn := p.spec.Function
	env := make([]string, 0, 27+len(fn.Environment))
	// User variables first: the platform's own come later and win.
	for k, v := range fn.Environment {
		env = append(env, k+"="+v)
	}
	path := p.deps.Runtimes.SearchPath(fn.Runtime)
	// Layers' paths as Lambda sets them, then (Node.js) the SDK the
	// runtime provides, below the function's own modules and its layers'.
	var nodePath []string
	if opt := p.optRoot(lay); opt != "" {
		path += ":" + opt + "/bin"
		env = append(env, "LD_LIBRARY_PATH="+opt+"/lib")
		switch {
		case strings.HasPrefix(fn.Runtime, "python"):
			env = append(env, "PYTHONPATH="+opt+"/python:"+opt+"/python/lib/"+fn.Runtime+"/site-packages")
		case strings.HasPrefix(fn.Runtime, "nodejs"):
			major := strings.TrimSuffix(strings.TrimPrefix(fn.Runtime, "nodejs"), ".x")
			nodePath = append(nodePath, opt+"/nodejs/node"+major+"/node_modules", opt+"/nodejs/node_modules")
		}
	}
	if sdk := p.nodeSDK(); sdk != "" {
		if lay.UID >= 0 {
			sdk = lay.RuntimeDir + "/" + sandbox.SDKFolder // bound there
		}
		nodePath = append(nodePath, sdk)
	}
	if len(nodePath) > 0 {
		env = append(env, "NODE_PATH="+strings.Join(nodePath, ":"))
	}
	env = append(env,
		"PATH="+path,
		"LANG=en_US.UTF-8",
		"TZ=:UTC",
		"HOME="+lay.TmpDir,
		"TMPDIR="+lay.TmpDir,
		"AWS_LAMBDA_RUNTIME_API="+apiAddr,
		"_HANDLER="+fn.Handler,
		"LAMBDA_TASK_ROOT="+lay.TaskRoot,
		"LAMBDA_RUNTIME_DIR="+lay.RuntimeDir,
		"AWS_LAMBDA_FUNCTION_NAME="+fn.Name,
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE="+strconv.Itoa(fn.MemorySize),
		"AWS_LAMBDA_FUNCTION_VERSION="+p.spec.Version,
		"AWS_LAMBDA_INITIALIZATION_TYPE="+initType,
		"AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/"+fn.Name,
		"AWS_LAMBDA_LOG_STREAM_NAME="+stream,
		"AWS_REGION="+p.deps.Region,
		"AWS_DEFAULT_REGION="+p.deps.Region,
		// Any AWS SDK inside the function reaches this Stratus.
		"AWS_ENDPOINT_URL="+p.deps.APIEndpoint,
	)
	if !function.IsProvided(fn.Runtime) {
		env = append(env, "AWS_EXECUTION_ENV=AWS_Lambda_"+fn.Runtime)
	}
	// The managed runtimes' clients format and filter their logs by these.
	if fn.Logging.JSON() {
		env = append(env, "AWS_LAMBDA_LOG_FORMAT=JSON")
		if l := fn.Logging.ApplicationLogLevel; l != "" {
			env = append(env, "AWS_LAMBDA_LOG_LEVEL="+l)
		}
	}
	// A Go runtime sizes its scheduler to the host's CPUs; an instance is
	// entitled to MemorySize/1769 of one. Telling Go so spares the futex
	// and nanosleep churn of idle scheduler threads, a third of the CPU of
	// a warm invoke. The function's own GOMAXPROCS wins.
	if _, set := fn.Environment["GOMAXPROCS"]; !set {
		env = append(env, "GOMAXPROCS="+strconv.Itoa(fn.VCPUs()))
	}
	// A multi-concurrency environment: aws-lambda-go runs this many /next
	// loops, and so do our Node.js and Python runtime clients, over their
	// workers.
	if p.multi {
		env = append(env, "AWS_LAMBDA_MAX_CONCURRENCY="+strconv.Itoa(p.perEnv))
	}
	return env
}

// withCredentials adds the temporary credentials of the function's role
// to env, and says when the instance must be retired for them to stay
// valid (zero: never).
func (p *Pool) withCredentials(env []string) ([]string, time.Time) {
	if p.deps.Credentials == nil {
		return env, time.Time{}
	}
	c, ok := p.deps.Credentials(p.spec.Function)
	if !ok {
		return env, time.Time{}
	}
	env = append(env, "AWS_ACCESS_KEY_ID="+c.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+c.SecretAccessKey, "AWS_SESSION_TOKEN="+c.SessionToken)
	return env, c.Expiration.Add(-credentialMargin)
}

// optRoot is where the instance sees its layers: /opt in a sandbox, the
// merged folder itself otherwise; "" without layers.
func (p *Pool) optRoot(lay sandbox.Layout) string {
	if p.spec.OptDir == "" {
		return ""
	}
	if lay.UID >= 0 {
		return "/opt"
	}
	return p.spec.OptDir
}

// Invoke runs one invocation and waits for its result, the instance's
// exit, the deadline or the end of ctx, whichever comes first. After a
// timeout, a crash or a cancellation the instance is dead.
func (i *Instance) Invoke(ctx context.Context, inv *runtimeapi.Invocation) (Result, error) {
	res := i.ep.Dispatch(inv)
	timer := time.NewTimer(time.Until(inv.Deadline))
	defer timer.Stop()
	select {
	case r := <-res:
		return fromRuntime(r), nil
	case <-i.proc.Done():
		// An answer posted just before exiting still counts.
		select {
		case r := <-res:
			return fromRuntime(r), nil
		default:
		}
		i.dead.Store(true)
		if !inv.Picked() {
			return Result{}, ErrNotStarted
		}
		typ := outcome.TypeExit
		if i.proc.OOMKilled() {
			typ = outcome.TypeOutOfMemory
		}
		msg := "RequestId: " + inv.RequestID + " Error: Runtime exited with error: " + exitText(i.proc.Err())
		return Result{Outcome: outcome.Error, ErrorType: typ, Payload: outcome.ErrorDoc(typ, msg)}, nil
	case <-timer.C:
		if time.Since(inv.Deadline) > pauseSlack {
			grace := time.NewTimer(pauseGrace)
			defer grace.Stop()
			select {
			case r := <-res:
				return fromRuntime(r), nil
			case <-grace.C:
			}
		}
		// The instance is stopped (or, running others' invocations too,
		// retired once they end): its runtime may still be busy with this.
		i.ep.Forget(inv.RequestID)
		i.dead.Store(true)
		return Result{Outcome: outcome.Timeout, ErrorType: outcome.TypeTimedOut}, nil
	case <-ctx.Done():
		i.ep.Forget(inv.RequestID)
		i.dead.Store(true)
		return Result{Outcome: outcome.Cancelled, ErrorType: outcome.TypeShuttingDown,
			Payload: outcome.ErrorDoc(outcome.TypeShuttingDown, "RequestId: "+inv.RequestID+" Error: invocation cancelled: "+context.Cause(ctx).Error())}, nil
	}
}

// MaxMemoryMB is the instance's peak memory so far.
func (i *Instance) MaxMemoryMB() int { return i.proc.MaxMemoryMB() }

// Alive reports whether the instance can take another invocation.
func (i *Instance) Alive() bool {
	if i.dead.Load() {
		return false
	}
	select {
	case <-i.proc.Done():
		i.dead.Store(true)
		return false
	default:
		return true
	}
}

// destroy tears the instance down completely.
func (i *Instance) destroy() {
	i.dead.Store(true)
	i.ep.Close()
	i.proc.Kill()
	i.Logs.Settle()
	i.Logs.Close()
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// logFormat is how an instance's capture applies a LoggingConfig.
func logFormat(c *function.LoggingConfig) logs.Format {
	if !c.JSON() {
		return logs.Format{}
	}
	return logs.Format{JSON: true, AppLevel: logs.ParseLevel(c.ApplicationLogLevel), SysLevel: logs.ParseLevel(c.SystemLogLevel)}
}

// nodeSDK is the host folder of the Node.js SDK a function gets, "" for none.
func (p *Pool) nodeSDK() string {
	if !strings.HasPrefix(p.spec.Function.Runtime, "nodejs") {
		return ""
	}
	return p.deps.Runtimes.NodeSDK
}
