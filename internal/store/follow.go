package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"
)

// Follow passes every current entry of kv to apply and returns once they
// are all applied; from then on a goroutine applies each change as it
// comes, until stop is called (stop waits for it). Deletions arrive as
// entries whose Operation is not KeyValuePut. It is how every in-memory
// view of a bucket stays current without a store round trip per read.
func Follow(ctx context.Context, kv jetstream.KeyValue, apply func(jetstream.KeyValueEntry)) (stop func(), err error) {
	w, err := kv.WatchAll(context.Background())
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", kv.Bucket(), err)
	}
	// The watcher sends every current value, then nil once caught up.
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("watch of " + kv.Bucket() + " closed during load")
			}
			if e == nil {
				done := make(chan struct{})
				go func() {
					defer close(done)
					for e := range w.Updates() {
						if e != nil {
							apply(e)
						}
					}
				}()
				return func() { _ = w.Stop(); <-done }, nil
			}
			apply(e)
		case <-ctx.Done():
			_ = w.Stop()
			return nil, ctx.Err()
		}
	}
}

// FollowJSON is Follow for buckets of JSON values: set gets each key with
// its decoded value (nil once deleted) and revision. A value that does not
// decode is logged and skipped.
func FollowJSON[T any](ctx context.Context, kv jetstream.KeyValue, log *slog.Logger, set func(key string, v *T, rev uint64)) (stop func(), err error) {
	return Follow(ctx, kv, func(e jetstream.KeyValueEntry) {
		var v *T
		if e.Operation() == jetstream.KeyValuePut {
			v = new(T)
			if err := json.Unmarshal(e.Value(), v); err != nil {
				log.Error("skipping unreadable entry", "bucket", kv.Bucket(), "key", e.Key(), "err", err)
				return
			}
		}
		set(e.Key(), v, e.Revision())
	})
}
