package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stratus-faas/stratus/internal/function"
)

// ErrNoEventConfig is returned when a function has no event invoke config.
var ErrNoEventConfig = errors.New("event invoke config not found")

// EventConfig returns a function's asynchronous invocation settings, or nil.
func (r *Registry) EventConfig(name string) *function.EventInvokeConfig {
	if e := r.entryOf(eventConfigKey(name)); e != nil {
		return e.eic
	}
	return nil
}

// PutEventConfig stores settings; with merge, unset fields keep their value.
func (r *Registry) PutEventConfig(ctx context.Context, c function.EventInvokeConfig, merge bool) (*function.EventInvokeConfig, error) {
	if _, err := r.Get(c.Function); err != nil {
		return nil, err
	}
	key := eventConfigKey(c.Function)
	for {
		cur := r.entryOf(key)
		next := c
		if merge {
			if cur == nil {
				return nil, ErrNoEventConfig
			}
			next = *cur.eic
			if c.MaximumRetryAttempts != nil {
				next.MaximumRetryAttempts = c.MaximumRetryAttempts
			}
			if c.MaximumEventAge != nil {
				next.MaximumEventAge = c.MaximumEventAge
			}
			if c.OnSuccess != "" {
				next.OnSuccess = c.OnSuccess
			}
			if c.OnFailure != "" {
				next.OnFailure = c.OnFailure
			}
			next.LastModified = c.LastModified
		}
		if err := next.Validate(); err != nil {
			return nil, err
		}
		data, _ := json.Marshal(&next)
		var rev uint64
		var err error
		if cur == nil {
			rev, err = r.st.Functions.Create(ctx, key, data)
		} else {
			rev, err = r.st.Functions.Update(ctx, key, data, cur.rev)
		}
		if errors.Is(err, jetstream.ErrKeyExists) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("store event invoke config: %w", err)
		}
		r.setEntry(key, &entry{eic: &next, rev: rev})
		return &next, nil
	}
}

// DeleteEventConfig removes the settings.
func (r *Registry) DeleteEventConfig(ctx context.Context, name string) error {
	if _, err := r.Get(name); err != nil {
		return err
	}
	key := eventConfigKey(name)
	e := r.entryOf(key)
	if e == nil {
		return ErrNoEventConfig
	}
	if err := r.st.Functions.Delete(ctx, key, jetstream.LastRevision(e.rev)); err != nil {
		return fmt.Errorf("delete event invoke config: %w", err)
	}
	r.setEntry(key, &entry{rev: e.rev + 1})
	return nil
}
