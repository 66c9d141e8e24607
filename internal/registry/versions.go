package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stratus-faas/stratus/internal/function"
)

// Keys of the functions bucket. Function names cannot hold a dot, so a dot
// separates a function's own records: NAME ($LATEST), NAME.v.N (version N),
// NAME.a.ALIAS, NAME.concurrency.
type kind int

const (
	kindLatest kind = iota
	kindVersion
	kindAlias
	kindConcurrency
	kindURL
	kindEventConfig
	kindPolicy
)

func versionKey(name, v string) string  { return name + ".v." + v }
func aliasKey(name, a string) string    { return name + ".a." + a }
func concurrencyKey(name string) string { return name + ".concurrency" }
func eventConfigKey(name string) string { return name + ".eventconfig" }
func urlKey(name, q string) string {
	if q == "" {
		q = "$LATEST"
	}
	return name + ".u." + strings.ReplaceAll(q, "$", "_")
}

// policyKey is a function's resource policy: of the unqualified
// function ("_"), of $LATEST ("_LATEST"), or of a version or alias.
func policyKey(name, q string) string {
	if q == "" {
		q = "_"
	}
	return name + ".p." + strings.ReplaceAll(q, "$", "_")
}

func kindOf(key string) kind {
	switch {
	case strings.Contains(key, ".p."):
		return kindPolicy
	case strings.Contains(key, ".v."):
		return kindVersion
	case strings.Contains(key, ".a."):
		return kindAlias
	case strings.HasSuffix(key, ".concurrency"):
		return kindConcurrency
	case strings.Contains(key, ".u."):
		return kindURL
	case strings.HasSuffix(key, ".eventconfig"):
		return kindEventConfig
	}
	return kindLatest
}

func nameOf(key string) string {
	if i := strings.IndexByte(key, '.'); i >= 0 {
		return key[:i]
	}
	return key
}

// Errors of versions and aliases.
var (
	ErrAliasNotFound = errors.New("alias not found")
	ErrAliasExists   = errors.New("alias already exists")
	ErrVersionInUse  = errors.New("version in use by an alias")
	ErrNoProvisioned = errors.New("no provisioned concurrency config")
)

// children returns the live records of a function other than $LATEST.
func (r *Registry) children(name string) map[string]*entry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := map[string]*entry{}
	for key, e := range r.fns {
		if e.live() && key != name && nameOf(key) == name {
			out[key] = e
		}
	}
	return out
}

func (r *Registry) entryOf(key string) *entry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if e := r.fns[key]; e != nil && e.live() {
		return e
	}
	return nil
}

// Resolve finds the version a qualifier names: "" or $LATEST, a version
// number, or an alias (whose weights pick one of two versions). It reads
// only memory.
func (r *Registry) Resolve(name, qualifier string) (*function.Function, error) {
	switch {
	case qualifier == "" || qualifier == function.Latest:
		return r.Get(name)
	case function.IsVersion(qualifier):
		if e := r.entryOf(versionKey(name, qualifier)); e != nil {
			return e.fn, nil
		}
	default:
		if e := r.entryOf(aliasKey(name, qualifier)); e != nil {
			v := e.alias.FunctionVersion
			for other, w := range e.alias.Weights {
				if rand.Float64() < w {
					v = other
				}
			}
			return r.Resolve(name, v)
		}
	}
	return nil, function.Errorf(ErrNotFound, "%s:%s", name, qualifier)
}

// ResolvePrimary is Resolve without weighted routing: an alias names its
// FunctionVersion. Provisioned concurrency on an alias goes there.
func (r *Registry) ResolvePrimary(name, qualifier string) (*function.Function, error) {
	if !function.IsVersion(qualifier) && qualifier != "" && qualifier != function.Latest {
		if e := r.entryOf(aliasKey(name, qualifier)); e != nil {
			return r.Resolve(name, e.alias.FunctionVersion)
		}
		return nil, function.Errorf(ErrNotFound, "%s:%s", name, qualifier)
	}
	return r.Resolve(name, qualifier)
}

// WithConcurrency lists the functions that have concurrency settings.
func (r *Registry) WithConcurrency() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []string
	for key, e := range r.fns {
		if e.conc != nil && kindOf(key) == kindConcurrency {
			out = append(out, nameOf(key))
		}
	}
	return out
}

// PublishVersion snapshots $LATEST as the next version, unless nothing
// changed since the last one, which is then returned.
func (r *Registry) PublishVersion(ctx context.Context, name, codeSha, description, revisionID string) (*function.Function, error) {
	for {
		cur, rev := r.get(name)
		if cur == nil {
			return nil, function.Errorf(ErrNotFound, "%s", name)
		}
		if revisionID != "" && revisionID != cur.RevisionID {
			return nil, ErrPrecondition
		}
		if codeSha != "" && codeSha != cur.CodeSha256 {
			return nil, function.Errorf(function.ErrInvalid, "CodeSha256 (%s) is different from the current code (%s)", codeSha, cur.CodeSha256)
		}
		if cur.LastVersion > 0 {
			if last := r.entryOf(versionKey(name, strconv.Itoa(cur.LastVersion))); last != nil && function.SameCode(last.fn, cur) {
				return last.fn, nil
			}
		}
		n := cur.LastVersion + 1
		latest := *cur
		latest.LastVersion = n
		data, _ := json.Marshal(&latest)
		newRev, err := r.st.Functions.Update(ctx, name, data, rev)
		if errors.Is(err, jetstream.ErrKeyExists) {
			continue // another publish raced us: look again
		}
		if err != nil {
			return nil, fmt.Errorf("store function: %w", err)
		}
		r.set(name, &latest, newRev)
		v := *cur
		v.Version = strconv.Itoa(n)
		v.LastVersion = 0
		v.RevisionID = uuid.NewString()
		if description != "" {
			v.Description = description
		}
		data, _ = json.Marshal(&v)
		vrev, err := r.st.Functions.Create(ctx, versionKey(name, v.Version), data)
		if err != nil {
			return nil, fmt.Errorf("store version: %w", err)
		}
		r.set(versionKey(name, v.Version), &v, vrev)
		return &v, nil
	}
}

// Versions lists $LATEST and the published versions in order.
func (r *Registry) Versions(name string) ([]*function.Function, error) {
	latest, err := r.Get(name)
	if err != nil {
		return nil, err
	}
	var vs []*function.Function
	for key, e := range r.children(name) {
		if kindOf(key) == kindVersion {
			vs = append(vs, e.fn)
		}
	}
	sort.Slice(vs, func(i, j int) bool {
		a, _ := strconv.Atoi(vs[i].Version)
		b, _ := strconv.Atoi(vs[j].Version)
		return a < b
	})
	return append([]*function.Function{latest}, vs...), nil
}

// DeleteVersion removes a published version no alias points at.
func (r *Registry) DeleteVersion(ctx context.Context, name, version string) error {
	e := r.entryOf(versionKey(name, version))
	if e == nil {
		return function.Errorf(ErrNotFound, "%s:%s", name, version)
	}
	for key, a := range r.children(name) {
		if kindOf(key) == kindAlias && (a.alias.FunctionVersion == version || a.alias.Weights[version] > 0) {
			return function.Errorf(ErrVersionInUse, "alias %s points at version %s", a.alias.Name, version)
		}
	}
	if err := r.st.Functions.Delete(ctx, versionKey(name, version), jetstream.LastRevision(e.rev)); err != nil {
		return fmt.Errorf("delete version: %w", err)
	}
	r.setEntry(versionKey(name, version), &entry{rev: e.rev + 1})
	r.collect(ctx, e.fn.CodeKey())
	return nil
}

func (r *Registry) checkVersion(name, v string) error {
	if v == function.Latest {
		return nil
	}
	if !function.IsVersion(v) || r.entryOf(versionKey(name, v)) == nil {
		return function.Errorf(ErrNotFound, "%s:%s", name, v)
	}
	return nil
}

// PutAlias creates (create true) or replaces an alias.
func (r *Registry) PutAlias(ctx context.Context, a function.Alias, create bool, revisionID string) (*function.Alias, error) {
	if err := function.ValidateAliasName(a.Name); err != nil {
		return nil, err
	}
	if _, err := r.Get(a.Function); err != nil {
		return nil, err
	}
	if err := r.checkVersion(a.Function, a.FunctionVersion); err != nil {
		return nil, err
	}
	if err := function.ValidateWeights(a.FunctionVersion, a.Weights); err != nil {
		return nil, err
	}
	for v := range a.Weights {
		if err := r.checkVersion(a.Function, v); err != nil {
			return nil, err
		}
	}
	key := aliasKey(a.Function, a.Name)
	a.RevisionID = uuid.NewString()
	data, _ := json.Marshal(&a)
	var rev uint64
	var err error
	if create {
		rev, err = r.st.Functions.Create(ctx, key, data)
		if errors.Is(err, jetstream.ErrKeyExists) {
			return nil, function.Errorf(ErrAliasExists, "%s", a.Name)
		}
	} else {
		cur := r.entryOf(key)
		if cur == nil {
			return nil, function.Errorf(ErrAliasNotFound, "%s", a.Name)
		}
		if revisionID != "" && revisionID != cur.alias.RevisionID {
			return nil, ErrPrecondition
		}
		rev, err = r.st.Functions.Update(ctx, key, data, cur.rev)
		if errors.Is(err, jetstream.ErrKeyExists) {
			return nil, ErrConflict
		}
	}
	if err != nil {
		return nil, fmt.Errorf("store alias: %w", err)
	}
	r.setEntry(key, &entry{alias: &a, rev: rev})
	return &a, nil
}

// Alias returns an alias.
func (r *Registry) Alias(name, alias string) (*function.Alias, error) {
	if _, err := r.Get(name); err != nil {
		return nil, err
	}
	if e := r.entryOf(aliasKey(name, alias)); e != nil {
		return e.alias, nil
	}
	return nil, function.Errorf(ErrAliasNotFound, "%s", alias)
}

// Aliases lists a function's aliases by name.
func (r *Registry) Aliases(name string) ([]*function.Alias, error) {
	if _, err := r.Get(name); err != nil {
		return nil, err
	}
	var out []*function.Alias
	for key, e := range r.children(name) {
		if kindOf(key) == kindAlias {
			out = append(out, e.alias)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// DeleteAlias removes an alias.
func (r *Registry) DeleteAlias(ctx context.Context, name, alias string) error {
	key := aliasKey(name, alias)
	e := r.entryOf(key)
	if e == nil {
		if _, err := r.Get(name); err != nil {
			return err
		}
		return function.Errorf(ErrAliasNotFound, "%s", alias)
	}
	if err := r.st.Functions.Delete(ctx, key, jetstream.LastRevision(e.rev)); err != nil {
		return fmt.Errorf("delete alias: %w", err)
	}
	r.setEntry(key, &entry{rev: e.rev + 1})
	return nil
}

// Concurrency returns a function's concurrency settings (never nil).
func (r *Registry) Concurrency(name string) *function.Concurrency {
	if e := r.entryOf(concurrencyKey(name)); e != nil {
		return e.conc
	}
	return &function.Concurrency{Function: name}
}

// ReservedTotal sums the reservations of all functions.
func (r *Registry) ReservedTotal() int { return int(r.reserved.Load()) }

// sumReserved recomputes the total; called with mu held after a change.
func (r *Registry) sumReserved() {
	total := 0
	for key, e := range r.fns {
		if e.conc != nil && e.conc.Reserved != nil && kindOf(key) == kindConcurrency {
			total += *e.conc.Reserved
		}
	}
	r.reserved.Store(int64(total))
}

// UpdateConcurrency changes a function's concurrency settings.
func (r *Registry) UpdateConcurrency(ctx context.Context, name string, change func(*function.Concurrency) error) (*function.Concurrency, error) {
	if _, err := r.Get(name); err != nil {
		return nil, err
	}
	key := concurrencyKey(name)
	for {
		e := r.entryOf(key)
		next := &function.Concurrency{Function: name, Provisioned: map[string]*function.Provisioned{}}
		if e != nil {
			next.Reserved = e.conc.Reserved
			next.RecursiveLoop = e.conc.RecursiveLoop
			for q, p := range e.conc.Provisioned {
				pp := *p
				next.Provisioned[q] = &pp
			}
		}
		if err := change(next); err != nil {
			return nil, err
		}
		data, _ := json.Marshal(next)
		var rev uint64
		var err error
		if e == nil {
			rev, err = r.st.Functions.Create(ctx, key, data)
		} else {
			rev, err = r.st.Functions.Update(ctx, key, data, e.rev)
		}
		if errors.Is(err, jetstream.ErrKeyExists) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("store concurrency: %w", err)
		}
		r.setEntry(key, &entry{conc: next, rev: rev})
		return next, nil
	}
}
