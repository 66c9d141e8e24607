// Package registry keeps functions and their code in the store, and an
// in-memory view of them that a watch on the store keeps current, so that
// the invocation path never makes a store round trip.
package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stratus-faas/stratus/internal/auth"
	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/store"
)

// Errors callers map to wire errors.
var (
	ErrNotFound     = errors.New("function not found")
	ErrExists       = errors.New("function already exists")
	ErrPrecondition = errors.New("revision id does not match")
	ErrConflict     = errors.New("concurrent update")
)

// Clock returns the current time; injected so tests can fix it.
type Clock func() time.Time

// Registry is the function catalogue.
type Registry struct {
	st        *store.Store
	code      *codeCache
	log       *slog.Logger
	now       Clock
	stopWatch func()

	mu        sync.RWMutex
	fns       map[string]*entry
	listeners []func(name string)
	reserved  atomic.Int64                   // sum of reserved concurrency
	urls      map[string]*function.URLConfig // by url id
}

// entry is one key of the functions bucket: a function ($LATEST), a
// published version, an alias or a concurrency setting. All nil once
// deleted (a tombstone, kept so that a late watch event is not applied).
type entry struct {
	fn    *function.Function
	alias *function.Alias
	conc  *function.Concurrency
	url   *function.URLConfig
	eic   *function.EventInvokeConfig
	pol   *function.ResourcePolicy
	cpol  *auth.Policy // pol, compiled once for the invocation path
	rev   uint64
}

func (e *entry) live() bool {
	return e.fn != nil || e.alias != nil || e.conc != nil || e.url != nil || e.eic != nil || e.pol != nil
}

// Open loads every function and starts watching the store for changes.
func Open(ctx context.Context, st *store.Store, codeRoot string, log *slog.Logger, now Clock) (*Registry, error) {
	if now == nil {
		now = time.Now
	}
	r := &Registry{
		st:   st,
		code: newCodeCache(st.Code, codeRoot),
		log:  log,
		now:  now,
		fns:  make(map[string]*entry),
		urls: make(map[string]*function.URLConfig),
	}
	var err error
	if r.stopWatch, err = store.Follow(ctx, st.Functions, r.apply); err != nil {
		return nil, err
	}
	return r, nil
}

// OnChange registers fn to be called, off any lock, after a function changes or is deleted.
func (r *Registry) OnChange(fn func(name string)) {
	r.mu.Lock()
	r.listeners = append(r.listeners, fn)
	r.mu.Unlock()
}

// apply folds one store entry into the view. Entries at or below the
// revision already seen are stale and ignored.
func (r *Registry) apply(e jetstream.KeyValueEntry) {
	ent := &entry{rev: e.Revision()}
	if e.Operation() == jetstream.KeyValuePut {
		var err error
		switch kindOf(e.Key()) {
		case kindAlias:
			ent.alias = new(function.Alias)
			err = json.Unmarshal(e.Value(), ent.alias)
		case kindConcurrency:
			ent.conc = new(function.Concurrency)
			err = json.Unmarshal(e.Value(), ent.conc)
		case kindURL:
			ent.url = new(function.URLConfig)
			err = json.Unmarshal(e.Value(), ent.url)
		case kindEventConfig:
			ent.eic = new(function.EventInvokeConfig)
			err = json.Unmarshal(e.Value(), ent.eic)
		case kindPolicy:
			ent.pol = new(function.ResourcePolicy)
			err = json.Unmarshal(e.Value(), ent.pol)
		default:
			ent.fn = new(function.Function)
			err = json.Unmarshal(e.Value(), ent.fn)
		}
		if err != nil {
			r.log.Error("skipping unreadable function record", "key", e.Key(), "err", err)
			return
		}
	}
	r.setEntry(e.Key(), ent)
}

func (r *Registry) set(key string, fn *function.Function, rev uint64) {
	r.setEntry(key, &entry{fn: fn, rev: rev})
}

func (r *Registry) setEntry(key string, ent *entry) {
	if ent.pol != nil && ent.cpol == nil {
		var err error
		if ent.cpol, err = auth.ParsePolicy(ent.pol.Document(), true); err != nil {
			r.log.Error("unreadable resource policy", "key", key, "err", err)
		}
	}
	r.mu.Lock()
	cur, ok := r.fns[key]
	if ok && cur.rev >= ent.rev {
		r.mu.Unlock()
		return
	}
	if ok && cur.url != nil {
		delete(r.urls, cur.url.ID)
	}
	if ent.url != nil {
		r.urls[ent.url.ID] = ent.url
	}
	r.fns[key] = ent
	if kindOf(key) == kindConcurrency {
		r.sumReserved()
	}
	ls := r.listeners
	r.mu.Unlock()
	name := nameOf(key)
	for _, l := range ls {
		l(name)
	}
}

// Close stops the watch.
func (r *Registry) Close() {
	r.stopWatch()
}

// Get returns a function by name from the in-memory view.
func (r *Registry) Get(name string) (*function.Function, error) {
	fn, _ := r.get(name)
	if fn == nil {
		return nil, function.Errorf(ErrNotFound, "%s", name)
	}
	return fn, nil
}

func (r *Registry) get(name string) (*function.Function, uint64) {
	r.mu.RLock()
	e := r.fns[name]
	r.mu.RUnlock()
	if e == nil {
		return nil, 0
	}
	return e.fn, e.rev
}

// List returns the functions sorted by name.
func (r *Registry) List() []*function.Function {
	r.mu.RLock()
	out := make([]*function.Function, 0, len(r.fns))
	for key, e := range r.fns {
		if e.fn != nil && kindOf(key) == kindLatest {
			out = append(out, e.fn)
		}
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Create stores a new function with its zipped code.
func (r *Registry) Create(ctx context.Context, cfg function.Config, zip []byte) (*function.Function, error) {
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pkg, err := r.prepareCode(ctx, cfg.Runtime, cfg.Handler, zip)
	if err != nil {
		return nil, err
	}
	fn := &function.Function{
		Config:       cfg,
		CodeSha256:   pkg.Sha256,
		CodeSize:     pkg.Size,
		RevisionID:   uuid.NewString(),
		LastModified: r.now().UTC(),
	}
	data, err := json.Marshal(fn)
	if err != nil {
		return nil, fmt.Errorf("encode function: %w", err)
	}
	rev, err := r.st.Functions.Create(ctx, cfg.Name, data)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return nil, function.Errorf(ErrExists, "%s", cfg.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("store function: %w", err)
	}
	r.set(cfg.Name, fn, rev)
	return fn, nil
}

// UpdateCode replaces a function's code. revisionID, when set, must match.
func (r *Registry) UpdateCode(ctx context.Context, name, revisionID string, zip []byte) (*function.Function, error) {
	return r.update(ctx, name, revisionID, func(fn *function.Function) error {
		pkg, err := r.prepareCode(ctx, fn.Runtime, fn.Handler, zip)
		if err != nil {
			return err
		}
		fn.CodeSha256, fn.CodeSize = pkg.Sha256, pkg.Size
		return nil
	})
}

// UpdateConfig applies change to a copy of the configuration and stores it.
func (r *Registry) UpdateConfig(ctx context.Context, name, revisionID string, change func(*function.Config)) (*function.Function, error) {
	return r.update(ctx, name, revisionID, func(fn *function.Function) error {
		change(&fn.Config)
		fn.ApplyDefaults()
		if err := fn.Validate(); err != nil {
			return err
		}
		// A handler is found when the function runs, as on Lambda: scripts
		// change the configuration before the code. Only an OS-only runtime
		// needs its bootstrap now, since nothing else could report it.
		if !function.IsProvided(fn.Runtime) {
			return nil
		}
		data, err := r.code.zip(ctx, fn.CodeKey())
		if err != nil {
			return err
		}
		pkg, err := function.ListZip(data)
		if err != nil {
			return err
		}
		return pkg.CheckHandler(fn.Runtime, fn.Handler)
	})
}

func (r *Registry) update(ctx context.Context, name, revisionID string, change func(*function.Function) error) (*function.Function, error) {
	cur, rev := r.get(name)
	if cur == nil {
		return nil, function.Errorf(ErrNotFound, "%s", name)
	}
	if revisionID != "" && revisionID != cur.RevisionID {
		return nil, ErrPrecondition
	}
	next := *cur
	next.Environment = cloneMap(cur.Environment)
	next.Tags = cloneMap(cur.Tags)
	if err := change(&next); err != nil {
		return nil, err
	}
	next.RevisionID = uuid.NewString()
	next.LastModified = r.now().UTC()
	data, err := json.Marshal(&next)
	if err != nil {
		return nil, fmt.Errorf("encode function: %w", err)
	}
	newRev, err := r.st.Functions.Update(ctx, name, data, rev)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return nil, ErrConflict
		}
		return nil, fmt.Errorf("store function: %w", err)
	}
	r.set(name, &next, newRev)
	r.collect(ctx, cur.CodeKey())
	return &next, nil
}

// Delete removes a function.
func (r *Registry) Delete(ctx context.Context, name string) error {
	cur, rev := r.get(name)
	if cur == nil {
		return function.Errorf(ErrNotFound, "%s", name)
	}
	if err := r.st.Functions.Delete(ctx, name, jetstream.LastRevision(rev)); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return ErrConflict
		}
		return fmt.Errorf("delete function: %w", err)
	}
	// The delete marker's revision is above rev; a tombstone at rev+1 keeps
	// a late watch event from bringing the function back.
	r.set(name, nil, rev+1)
	// Then its versions, aliases and concurrency settings.
	var codes []string
	layers := cur.Layers
	for key, e := range r.children(name) {
		if err := r.st.Functions.Delete(ctx, key, jetstream.LastRevision(e.rev)); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
			r.log.Warn("could not delete", "key", key, "err", err)
		}
		r.setEntry(key, &entry{rev: e.rev + 1})
		if e.fn != nil {
			codes = append(codes, e.fn.CodeKey())
			layers = append(layers, e.fn.Layers...)
		}
	}
	r.collect(ctx, cur.CodeKey())
	for _, c := range codes {
		r.collect(ctx, c)
	}
	// A layer version deleted while functions used it goes with the last.
	for _, l := range layers {
		r.collectLayer(ctx, l.Key)
	}
	return nil
}

// CodeDir returns the folder holding the function's extracted code,
// fetching it from the store on first use on this node.
func (r *Registry) CodeDir(ctx context.Context, fn *function.Function) (string, error) {
	return r.code.dir(ctx, fn.CodeKey())
}

// CodeZip returns the function's zipped code.
func (r *Registry) CodeZip(ctx context.Context, key string) ([]byte, error) {
	return r.code.zip(ctx, key)
}

func (r *Registry) prepareCode(ctx context.Context, runtime, handler string, zip []byte) (*function.Package, error) {
	if err := r.st.Writable(); err != nil {
		return nil, err
	}
	pkg, err := function.InspectZip(zip)
	if err != nil {
		return nil, err
	}
	if err := pkg.CheckHandler(runtime, handler); err != nil {
		return nil, err
	}
	if err := r.code.put(ctx, function.ShaKey(pkg.Sha256), zip); err != nil {
		return nil, err
	}
	return pkg, nil
}

// collect removes code no function refers to any more.
func (r *Registry) collect(ctx context.Context, key string) {
	r.mu.RLock()
	for _, e := range r.fns {
		if e.fn != nil && e.fn.CodeKey() == key {
			r.mu.RUnlock()
			return
		}
	}
	r.mu.RUnlock()
	if err := r.code.remove(ctx, key); err != nil {
		r.log.Warn("could not remove unused code", "code", key, "err", err)
	}
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
