package pool

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/stratus-faas/stratus/internal/function"
)

// Catalog is what the set of pools reads of the function registry;
// *registry.Registry is the real one.
type Catalog interface {
	Resolve(name, qualifier string) (*function.Function, error)
	ResolvePrimary(name, qualifier string) (*function.Function, error)
	Concurrency(name string) *function.Concurrency
	WithConcurrency() []string
	// CodeDir unpacks the version's code (downloading it if need be).
	CodeDir(ctx context.Context, fn *function.Function) (string, error)
	// OptDir is the version's layers merged in order ("" for none).
	OptDir(ctx context.Context, fn *function.Function) (string, error)
}

// SetOptions configure a set of pools.
type SetOptions struct {
	IdleTimeout time.Duration // default; a function may override it
	ScaleRate   int           // new on-demand instances per function per 10 s
	// Share is this node's part of a version's provisioned concurrency
	// (nil: all of it; in a cluster, the nodes split it).
	Share func(n int) int
}

// ErrShuttingDown is returned once the set is closing.
var ErrShuttingDown = errors.New("server is shutting down")

// Set is every pool of this node, one per function version: it makes
// them on first use, retires those whose function changed, and keeps
// their provisioned concurrency as the registry says.
type Set struct {
	cat  Catalog
	deps *Deps
	opts SetOptions
	log  *slog.Logger

	mu       sync.RWMutex
	pools    map[string]*Pool // by "name:version"
	closing  bool
	pending  map[string]bool // functions whose provisioned concurrency needs a look
	wake     chan struct{}
	scaling  sync.Map // function name -> *rate.Limiter of new instances
	retiring sync.WaitGroup
	worker   sync.WaitGroup
	ctx      context.Context // ends at Close: downloads for provisioning stop
	cancel   context.CancelFunc
}

// NewSet returns an empty set; Close stops it.
func NewSet(cat Catalog, deps *Deps, opts SetOptions) *Set {
	s := &Set{cat: cat, deps: deps, opts: opts, log: deps.Log, pools: map[string]*Pool{},
		pending: map[string]bool{}, wake: make(chan struct{}, 1)}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.worker.Go(s.reconcileLoop)
	return s
}

func poolKey(fn *function.Function) string { return fn.Name + ":" + fn.VersionLabel() }

// Changed is told, on the registry's watch, that a function changed or is
// gone. Pools of versions that changed retire at once (a map operation);
// provisioned concurrency, which may need to download code, is applied
// by the set's own worker, so the watcher never waits.
func (s *Set) Changed(name string) {
	var retire []*Pool
	s.mu.Lock()
	for key, p := range s.pools {
		spec := p.Spec()
		if spec.Function.Name != name {
			continue
		}
		cur, err := s.cat.Resolve(name, spec.Version)
		if err != nil || cur.RevisionID != spec.Function.RevisionID {
			delete(s.pools, key)
			retire = append(retire, p)
		}
	}
	closing := s.closing
	if !closing {
		s.pending[name] = true
	}
	s.mu.Unlock()
	for _, p := range retire {
		s.retiring.Go(p.Close)
	}
	if !closing {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// ReconcileAll queues every function with provisioned concurrency, at start.
func (s *Set) ReconcileAll() {
	for _, name := range s.cat.WithConcurrency() {
		s.Changed(name)
	}
}

func (s *Set) reconcileLoop() {
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.wake:
		}
		for {
			s.mu.Lock()
			var name string
			for n := range s.pending {
				name = n
				break
			}
			delete(s.pending, name)
			s.mu.Unlock()
			if name == "" || s.ctx.Err() != nil {
				break
			}
			s.reconcile(name)
		}
	}
}

// reconcile sets every pool of a function to the provisioned concurrency
// its configuration asks for.
func (s *Set) reconcile(name string) {
	conc := s.cat.Concurrency(name)
	want := map[string]int{}
	fns := map[string]*function.Function{}
	if conc != nil {
		for q, pc := range conc.Provisioned {
			fn, err := s.cat.ResolvePrimary(name, q)
			if err != nil {
				continue
			}
			want[fn.VersionLabel()] += pc.Requested
			fns[fn.VersionLabel()] = fn
		}
	}
	for v, n := range want {
		p, err := s.For(s.ctx, fns[v])
		if err != nil {
			if s.ctx.Err() == nil {
				s.log.Warn("provisioned concurrency", "function", name, "version", v, "err", err)
			}
			continue
		}
		if s.opts.Share != nil {
			n = s.opts.Share(n)
		}
		p.SetProvisioned(n)
	}
	s.mu.RLock()
	var off []*Pool
	for _, p := range s.pools {
		spec := p.Spec()
		if spec.Function.Name == name && want[spec.Version] == 0 && p.Provisioned().Requested > 0 {
			off = append(off, p)
		}
	}
	s.mu.RUnlock()
	for _, p := range off {
		p.SetProvisioned(0)
	}
}

// Provisioned reports the provisioned instances of a version on this node.
func (s *Set) Provisioned(fn *function.Function) ProvisionedStatus {
	s.mu.RLock()
	p := s.pools[poolKey(fn)]
	s.mu.RUnlock()
	if p == nil {
		return ProvisionedStatus{}
	}
	return p.Provisioned()
}

// For returns the pool of the version fn names, making it if need be.
// A request resolved just before a deploy gets the pool of the current
// revision: each invocation runs wholly on one revision, the newest the
// node knows of.
func (s *Set) For(ctx context.Context, fn *function.Function) (*Pool, error) {
	key := poolKey(fn)
	s.mu.RLock()
	p, closing := s.pools[key], s.closing
	s.mu.RUnlock()
	if closing {
		return nil, ErrShuttingDown
	}
	if p != nil && p.Spec().Function.RevisionID == fn.RevisionID {
		return p, nil
	}
	if cur, err := s.cat.Resolve(fn.Name, fn.VersionLabel()); err == nil && cur.RevisionID != fn.RevisionID {
		fn = cur
		if p != nil && p.Spec().Function.RevisionID == fn.RevisionID {
			return p, nil
		}
	}
	dir, err := s.cat.CodeDir(ctx, fn)
	if err != nil {
		return nil, err
	}
	opt, err := s.cat.OptDir(ctx, fn)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil, ErrShuttingDown
	}
	old := s.pools[key]
	if old != nil && old.Spec().Function.RevisionID == fn.RevisionID {
		return old, nil
	}
	if old != nil {
		s.retiring.Go(old.Close)
	}
	p = New(Spec{
		Function:    fn,
		Version:     fn.VersionLabel(),
		CodeDir:     dir,
		OptDir:      opt,
		IdleTimeout: fn.IdleTimeout(s.opts.IdleTimeout),
		ScaleLimit:  s.scaleLimit(fn.Name),
	}, s.deps)
	s.pools[key] = p
	return p, nil
}

// scaleLimit is the function's allowance of new instances: ScaleRate per
// 10 seconds, refilled continuously and shared by its versions.
func (s *Set) scaleLimit(name string) func() bool {
	n := max(s.opts.ScaleRate, 1)
	l, _ := s.scaling.LoadOrStore(name, rate.NewLimiter(rate.Limit(float64(n)/10), n))
	return l.(*rate.Limiter).Allow
}

// Close retires every pool, tearing down all idle instances now and busy
// ones as their invocations end; callers cancel those first.
func (s *Set) Close() {
	s.mu.Lock()
	s.closing = true
	pools := s.pools
	s.pools = map[string]*Pool{}
	s.mu.Unlock()
	s.cancel()
	s.worker.Wait()
	for _, p := range pools {
		s.retiring.Go(p.Close)
	}
	s.retiring.Wait()
}

// ProvisionedInstances counts a function's provisioned instances alive
// on this node (idle or busy; among those Instances counts).
func (s *Set) ProvisionedInstances(name string) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, p := range s.pools {
		if p.spec.Function.Name == name {
			n += p.Provisioned().Ready
		}
	}
	return n
}

// ProvisionedReady counts the ready provisioned instances of every
// version on this node, by "function:version".
func (s *Set) ProvisionedReady() map[string]int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out map[string]int
	for key, p := range s.pools {
		if n := p.Provisioned().Ready; n > 0 {
			if out == nil {
				out = map[string]int{}
			}
			out[key] += n
		}
	}
	return out
}

// Instances counts the live instances of every version of a function on
// this node.
func (s *Set) Instances(name string) (idle, total int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, p := range s.pools {
		if p.spec.Function.Name == name {
			i, t := p.Counts()
			idle, total = idle+i, total+t
		}
	}
	return idle, total
}
