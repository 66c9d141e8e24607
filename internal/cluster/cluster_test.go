package cluster

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratus-faas/stratus/internal/store"
)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), store.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

func join(t *testing.T, st *store.Store, name string, ttl time.Duration) *Members {
	t.Helper()
	m, err := Join(context.Background(), st.Nodes, Options{Self: Node{Name: name}, TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMembersAndShares(t *testing.T) {
	st := openStore(t)
	a, b, c := join(t, st, "a", 10*time.Second), join(t, st, "b", 10*time.Second), join(t, st, "c", 10*time.Second)
	defer a.Leave(context.Background())
	defer b.Leave(context.Background())
	waitFor(t, "three live nodes", func() bool { return len(a.Live()) == 3 && len(c.Live()) == 3 })
	for _, tc := range []struct{ n, a, b, c int }{{0, 0, 0, 0}, {1, 1, 0, 0}, {2, 1, 1, 0}, {5, 2, 2, 1}, {9, 3, 3, 3}} {
		if got := [3]int{a.Share(tc.n), b.Share(tc.n), c.Share(tc.n)}; got != [3]int{tc.a, tc.b, tc.c} {
			t.Errorf("shares of %d = %v, want %d %d %d", tc.n, got, tc.a, tc.b, tc.c)
		}
	}
	c.Leave(context.Background())
	waitFor(t, "c gone from a's view", func() bool { return len(a.Live()) == 2 })
	if a.Share(5)+b.Share(5) != 5 {
		t.Errorf("two nodes' shares of 5: %d + %d", a.Share(5), b.Share(5))
	}
}

// TestSlotsHoldClusterWide: three nodes hammer one limit of 5; never
// more than 5 run at once, all 5 can run, unused slots go back, and a
// node that stops beating loses what it held.
func TestSlotsHoldClusterWide(t *testing.T) {
	st := openStore(t)
	const limit = 5
	var nodes []*Slots
	var members []*Members
	for i := range 3 {
		m := join(t, st, fmt.Sprintf("n%d", i), 2*time.Second)
		members = append(members, m)
		s := newSlots(st.Slots, m, nil, 100*time.Millisecond)
		nodes = append(nodes, s)
	}
	waitFor(t, "three live nodes", func() bool { return len(members[0].Live()) == 3 })
	var running, peak, admitted atomic.Int64
	var wg sync.WaitGroup
	for w := range 24 {
		s := nodes[w%3]
		wg.Go(func() {
			for range 20 {
				if !s.Acquire("fn.x", limit) {
					time.Sleep(time.Millisecond)
					continue
				}
				admitted.Add(1)
				n := running.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				time.Sleep(2 * time.Millisecond)
				running.Add(-1)
				s.Release("fn.x")
			}
		})
	}
	wg.Wait()
	if p := peak.Load(); p > limit {
		t.Fatalf("%d ran at once under a limit of %d", p, limit)
	}
	if admitted.Load() == 0 {
		t.Fatal("nothing admitted")
	}
	// Unused slots go back, so one node alone can take all five.
	waitFor(t, "slots given back", func() bool {
		for _, s := range nodes {
			if h, _ := s.Held("fn.x"); h != 0 {
				return false
			}
		}
		return true
	})
	for i := range limit {
		if !nodes[0].Acquire("fn.x", limit) {
			t.Fatalf("slot %d of %d refused with the others idle", i+1, limit)
		}
	}
	if nodes[1].Acquire("fn.x", limit) {
		t.Fatal("a sixth slot was granted")
	}
	// Node 0 dies holding all five (it stops beating): once it is taken
	// for dead the others may use them.
	members[0].stop()
	members[0].wg.Wait()
	nodes[0].stop()
	nodes[0].wg.Wait()
	waitFor(t, "a dead node's slots reclaimed", func() bool { return nodes[1].Acquire("fn.x", limit) })
	nodes[1].Release("fn.x")
	for _, s := range nodes[1:] {
		s.Close(context.Background())
	}
}
