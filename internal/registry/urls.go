package registry

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stratus-faas/stratus/internal/function"
)

// ErrURLNotFound and ErrURLExists are errors of function URLs.
var (
	ErrURLNotFound = errors.New("function url config not found")
	ErrURLExists   = errors.New("function url config already exists")
)

// URLByID finds a function URL by the id in its address; memory only.
func (r *Registry) URLByID(id string) *function.URLConfig {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.urls[id]
}

// URL returns the URL configuration of a function (or alias).
func (r *Registry) URL(name, qualifier string) (*function.URLConfig, error) {
	if _, err := r.Get(name); err != nil {
		return nil, err
	}
	if e := r.entryOf(urlKey(name, qualifier)); e != nil {
		return e.url, nil
	}
	return nil, ErrURLNotFound
}

// URLs lists a function's URL configurations.
func (r *Registry) URLs(name string) ([]*function.URLConfig, error) {
	if _, err := r.Get(name); err != nil {
		return nil, err
	}
	var out []*function.URLConfig
	for key, e := range r.children(name) {
		if kindOf(key) == kindURL {
			out = append(out, e.url)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Qualifier < out[j].Qualifier })
	return out, nil
}

// PutURL creates (create true) or changes a function URL.
func (r *Registry) PutURL(ctx context.Context, u function.URLConfig, create bool, change func(*function.URLConfig)) (*function.URLConfig, error) {
	if _, err := r.Get(u.Function); err != nil {
		return nil, err
	}
	if u.Qualifier != "" && u.Qualifier != function.Latest {
		if function.IsVersion(u.Qualifier) {
			return nil, function.Errorf(function.ErrInvalid, "a function URL takes an alias or $LATEST as Qualifier, not a version")
		}
		if e := r.entryOf(aliasKey(u.Function, u.Qualifier)); e == nil {
			return nil, function.Errorf(ErrNotFound, "%s:%s", u.Function, u.Qualifier)
		}
	}
	key := urlKey(u.Function, u.Qualifier)
	cur := r.entryOf(key)
	next := u
	if create {
		if cur != nil {
			return nil, ErrURLExists
		}
		next.ID = newURLID()
		next.Created = next.LastModified
	} else {
		if cur == nil {
			return nil, ErrURLNotFound
		}
		next = *cur.url
		change(&next)
		next.LastModified = u.LastModified
	}
	if err := next.Validate(); err != nil {
		return nil, err
	}
	data, _ := json.Marshal(&next)
	var rev uint64
	var err error
	if create {
		rev, err = r.st.Functions.Create(ctx, key, data)
		if errors.Is(err, jetstream.ErrKeyExists) {
			return nil, ErrURLExists
		}
	} else {
		rev, err = r.st.Functions.Update(ctx, key, data, cur.rev)
		if errors.Is(err, jetstream.ErrKeyExists) {
			return nil, ErrConflict
		}
	}
	if err != nil {
		return nil, fmt.Errorf("store function url: %w", err)
	}
	r.setEntry(key, &entry{url: &next, rev: rev})
	return &next, nil
}

// DeleteURL removes a function URL.
func (r *Registry) DeleteURL(ctx context.Context, name, qualifier string) error {
	if _, err := r.Get(name); err != nil {
		return err
	}
	key := urlKey(name, qualifier)
	e := r.entryOf(key)
	if e == nil {
		return ErrURLNotFound
	}
	if err := r.st.Functions.Delete(ctx, key, jetstream.LastRevision(e.rev)); err != nil {
		return fmt.Errorf("delete function url: %w", err)
	}
	r.setEntry(key, &entry{rev: e.rev + 1})
	return nil
}

// newURLID makes a 32-character url id of lower-case letters and digits.
func newURLID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
