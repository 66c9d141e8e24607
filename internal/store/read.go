package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ReadSubject delivers the messages of a stream on subject from since on,
// in order. Without follow it returns once caught up; with follow it waits
// for new messages until ctx ends.
func (s *Store) ReadSubject(ctx context.Context, stream, subject string, since time.Time, follow bool, fn func(jetstream.Msg) error) error {
	return s.Read(ctx, stream, ReadOptions{Subjects: []string{subject}, Since: since, Follow: follow}, fn)
}

// ReadOptions select what Read delivers.
type ReadOptions struct {
	Subjects []string
	// From the message at StartSeq if set, else from Since (zero: all).
	StartSeq uint64
	Since    time.Time
	Follow   bool
}

// Read delivers the messages of a stream on any of the subjects, in
// order; without Follow it returns once caught up, with Follow it waits
// for new messages until ctx ends.
func (s *Store) Read(ctx context.Context, stream string, o ReadOptions, fn func(jetstream.Msg) error) error {
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: o.Subjects, InactiveThreshold: time.Minute}
	switch {
	case o.StartSeq > 0:
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = o.StartSeq
	case o.Since.IsZero():
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
	default:
		since := o.Since
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartTime = &since
	}
	cons, err := s.JS.OrderedConsumer(ctx, stream, cfg)
	if err != nil {
		return fmt.Errorf("read %s: %w", stream, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("read %s: %w", stream, err)
	}
	if info.NumPending == 0 && !o.Follow {
		return nil
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("read %s: %w", stream, err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return ctx.Err()
			}
			return fmt.Errorf("read %s: %w", stream, err)
		}
		if err := fn(msg); err != nil {
			return err
		}
		if !o.Follow {
			if md, err := msg.Metadata(); err == nil && md.NumPending == 0 {
				return nil
			}
		}
	}
}
