package pool_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/pool"
)

func multiFunction(n string) *function.Function {
	fn := testFunction("multi")
	fn.Tags = map[string]string{function.TagMaxConcurrency: n}
	return fn
}

// A multi-concurrency pool fills an environment before it starts another,
// hands out the least-loaded one, and makes invocations that arrive while
// one starts wait for its places instead of starting more.
func TestSharedPoolRouting(t *testing.T) {
	f := newFixture(t, nil)
	p := f.pool(t, pool.Spec{Function: multiFunction("2")})

	a, cold := mustAcquire(t, p)
	if !cold {
		t.Fatal("first acquire was not a cold start")
	}
	b, cold := mustAcquire(t, p)
	if cold || b != a {
		t.Fatalf("second acquire: cold %v, same environment %v; want the first environment's free place", cold, b == a)
	}
	c, cold := mustAcquire(t, p)
	if !cold || c == a {
		t.Fatal("a full environment did not make the pool start another")
	}
	p.Release(a)
	if d, _ := mustAcquire(t, p); d != a && d != c {
		t.Fatal("acquire went to an unknown environment")
	} else {
		p.Release(d)
	}
	p.Release(b)
	p.Release(c)
	if idle, total := p.Counts(); idle != 2 || total != 2 {
		t.Fatalf("counts = %d idle of %d, want 2 of 2", idle, total)
	}

	// Four arrivals at once on an empty pool of environments of 4: one start.
	q := f.pool(t, pool.Spec{Function: multiFunction("4")})
	var wg sync.WaitGroup
	got := make([]*pool.Instance, 4)
	for i := range got {
		wg.Go(func() {
			inst, _, err := q.Acquire(context.Background())
			if err != nil {
				t.Error(err)
			}
			got[i] = inst
		})
	}
	wg.Wait()
	for _, inst := range got[1:] {
		if inst != got[0] {
			t.Fatal("invocations arriving during a start started environments of their own")
		}
	}
	if _, total := q.Counts(); total != 1 {
		t.Fatalf("%d environments for 4 invocations at 4 per environment", total)
	}
	for _, inst := range got {
		q.Release(inst)
	}
}

// A discarded environment (timeout, crash) takes no new invocations and
// goes when its last one is released.
func TestSharedPoolDrain(t *testing.T) {
	f := newFixture(t, nil)
	p := f.pool(t, pool.Spec{Function: multiFunction("3")})
	a, _ := mustAcquire(t, p)
	b, _ := mustAcquire(t, p)
	p.Discard(a) // a timed out: the environment is retired
	c, cold := mustAcquire(t, p)
	if c == b || !cold {
		t.Fatal("a retired environment took a new invocation")
	}
	if _, total := p.Counts(); total != 2 {
		t.Fatalf("total %d, want the retired environment (still busy) and the new one", total)
	}
	p.Release(b)
	if _, total := p.Counts(); total != 1 {
		t.Fatalf("total %d after the retired environment's last invocation ended, want 1", total)
	}
	p.Release(c)
}
