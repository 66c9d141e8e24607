package batcher

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestLoop(t *testing.T) {
	var mu sync.Mutex
	pending, stored := 0, 0
	var reachable atomic.Bool
	reachable.Store(true)
	var flushes, lost atomic.Int32
	flush := func() bool {
		flushes.Add(1)
		mu.Lock()
		defer mu.Unlock()
		if !reachable.Load() {
			return false
		}
		stored += pending
		pending = 0
		return true
	}
	add := func(l *Loop, n int) {
		mu.Lock()
		pending += n
		mu.Unlock()
		l.Wake()
	}
	storedNow := func() int { mu.Lock(); defer mu.Unlock(); return stored }
	l := Start(5*time.Millisecond, 20*time.Millisecond, flush, func() { lost.Add(1) })

	// Items added within one window go in one flush.
	for range 100 {
		add(l, 1)
	}
	waitUntil(t, func() bool { return storedNow() == 100 })
	if n := flushes.Load(); n > 3 {
		t.Errorf("%d flushes for 100 items in one window", n)
	}

	// While the store is away, items wait for the retry, then are stored.
	reachable.Store(false)
	add(l, 5)
	waitUntil(t, func() bool { return flushes.Load() >= 4 })
	before := flushes.Load()
	for range 50 {
		add(l, 1) // no flush each: they wait for the retry
	}
	if n := flushes.Load() - before; n > 2 {
		t.Errorf("%d flushes while the store was away, want the retries alone", n)
	}
	reachable.Store(true)
	waitUntil(t, func() bool { return storedNow() == 155 })

	// Close flushes a last time, and says when that could not store all.
	add(l, 1)
	reachable.Store(false)
	l.Close()
	if lost.Load() != 1 {
		t.Errorf("lost called %d times at a failed last flush", lost.Load())
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(time.Millisecond)
	}
}
