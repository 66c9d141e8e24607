// Package batcher is the flush loop that log lines and usage records
// share: woken by new items, it waits a short window so that one write to
// the store (one fsync) carries many, then flushes; while the store cannot
// be reached it retries once a second, and new items wait for that retry
// instead of each trying again. Close flushes a last time.
package batcher

import "time"

// Loop runs flush in a goroutine of its own.
type Loop struct {
	window time.Duration
	retry  time.Duration
	// flush stores what is pending; false means the store could not be
	// reached and the items wait for the next retry.
	flush func() bool
	// lost is told when the last flush, at Close, could not store all.
	lost func()

	wake chan struct{}
	stop chan struct{}
	done chan struct{}
}

// Start runs the loop until Close.
func Start(window, retry time.Duration, flush func() bool, lost func()) *Loop {
	l := &Loop{window: window, retry: retry, flush: flush, lost: lost,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go l.run()
	return l
}

// Wake says that items are pending; it never blocks.
func (l *Loop) Wake() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Close flushes what is pending and stops the loop.
func (l *Loop) Close() {
	close(l.stop)
	<-l.done
}

func (l *Loop) run() {
	defer close(l.done)
	var retry <-chan time.Time
	for {
		select {
		case <-l.wake:
			if retry != nil {
				continue // the store is away; the retry takes these too
			}
			t := time.NewTimer(l.window)
			select {
			case <-t.C:
			case <-l.stop:
				t.Stop()
			}
		case <-retry:
		case <-l.stop:
			if !l.flush() && l.lost != nil {
				l.lost()
			}
			return
		}
		retry = nil
		if !l.flush() {
			retry = time.After(l.retry)
		}
	}
}
