package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stratus-faas/stratus/internal/store"
)

// Slots enforces concurrency limits for the cluster as a whole. Each node
// leases slots of a limit from a shared record (one key per limit, the
// slots each live node holds, written compare-and-set), and hands them to
// its invocations without a store round trip while it holds enough; slots
// it has not used for a while go back. So the slots held by the live
// nodes never add up to more than the limit, and only a node that grows
// past what it holds pays a write.
//
// The approximations: a node that dies keeps its slots until it is taken
// for dead (the membership TTL), so the others may throttle below the
// limit for that long; a node that holds idle slots makes another throttle
// until it gives them back (Linger); and while the store cannot be
// reached a node admits up to its even share of the limit on its own.
type Slots struct {
	kv      jetstream.KeyValue
	members *Members
	now     func() time.Time
	log     *slog.Logger
	linger  time.Duration

	mu   sync.Mutex
	keys map[string]*slot

	stop context.CancelFunc
	wg   sync.WaitGroup
}

type slot struct {
	lease sync.Mutex // one lease or return at a time per key on this node

	// under Slots.mu
	held, used int64
	lastUsed   time.Time // the last release
}

// Linger is how long slots stay held unused before they go back.
const Linger = time.Second

// leaseTimeout bounds one lease's round trips to the store.
const leaseTimeout = 2 * time.Second

// NewSlots starts the limiter; Close returns what it holds.
func NewSlots(kv jetstream.KeyValue, members *Members, log *slog.Logger) *Slots {
	return newSlots(kv, members, log, Linger)
}

func newSlots(kv jetstream.KeyValue, members *Members, log *slog.Logger, linger time.Duration) *Slots {
	if log == nil {
		log = slog.Default()
	}
	s := &Slots{kv: kv, members: members, now: members.opts.Now, log: log, linger: linger, keys: map[string]*slot{}}
	ctx, stop := context.WithCancel(context.Background())
	s.stop = stop
	s.wg.Go(func() { s.run(ctx) })
	return s
}

// Acquire takes one slot of the limit named key, leasing more from the
// cluster if this node holds none free; false means the limit is reached.
func (s *Slots) Acquire(key string, limit int64) bool {
	s.mu.Lock()
	sl := s.keys[key]
	if sl == nil {
		sl = &slot{}
		s.keys[key] = sl
	}
	if sl.used < sl.held && sl.held <= limit {
		sl.used++
		s.mu.Unlock()
		return true
	}
	s.mu.Unlock()

	sl.lease.Lock()
	defer sl.lease.Unlock()
	s.mu.Lock()
	if sl.used < sl.held && sl.held <= limit { // another caller leased meanwhile
		sl.used++
		s.mu.Unlock()
		return true
	}
	held, used := sl.held, sl.used
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), leaseTimeout)
	defer cancel()
	// Ask for one more than in use, and a little ahead when the limit has
	// room, so that a node growing fast writes once per few instances.
	n, err := s.update(ctx, key, func(others, mine int64) int64 {
		free := limit - others
		want := used + 1 + min(max((free-used)/int64(4*len(s.members.Live())), 0), 16)
		// Slots in use stay held even if the limit was lowered meanwhile.
		return max(min(want, free), used)
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		// The store cannot be reached: admit within an even share.
		share := limit / int64(len(s.members.Live()))
		if store.Unavailable(err) || errors.Is(err, context.DeadlineExceeded) {
			if sl.used < max(share, held) {
				sl.used++
				return true
			}
		}
		s.log.Debug("cluster: lease slots", "key", key, "err", err)
		return false
	}
	sl.held = n
	if sl.used < sl.held {
		sl.used++
		return true
	}
	return false
}

// Release gives back a slot Acquire took (to this node: it goes back to
// the cluster once unused for Linger).
func (s *Slots) Release(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sl := s.keys[key]
	if sl == nil {
		return
	}
	sl.used--
	sl.lastUsed = s.now()
}

// Held reports the slots of key this node holds and uses.
func (s *Slots) Held(key string) (held, used int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sl := s.keys[key]; sl != nil {
		return sl.held, sl.used
	}
	return 0, 0
}

// run gives back slots held unused for Linger.
func (s *Slots) run(ctx context.Context) {
	t := time.NewTicker(s.linger / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.giveBack(ctx, false)
	}
}

func (s *Slots) giveBack(ctx context.Context, all bool) {
	now := s.now()
	var keys []string
	s.mu.Lock()
	for k, sl := range s.keys {
		if sl.held > sl.used && (all || now.Sub(sl.lastUsed) >= s.linger) {
			keys = append(keys, k)
		}
	}
	s.mu.Unlock()
	for _, k := range keys {
		s.mu.Lock()
		sl := s.keys[k]
		s.mu.Unlock()
		sl.lease.Lock()
		lctx, cancel := context.WithTimeout(ctx, leaseTimeout)
		n, err := s.update(lctx, k, func(_, _ int64) int64 {
			s.mu.Lock()
			defer s.mu.Unlock()
			return sl.used
		})
		cancel()
		if err == nil {
			s.mu.Lock()
			// Only what is unused went back: those in use stay held.
			sl.held = max(n, sl.used)
			s.mu.Unlock()
		}
		sl.lease.Unlock()
	}
}

// update rewrites this node's count of key to what choose makes of the
// other live nodes' total and its own, compare-and-set; the record also
// drops the counts of nodes no longer alive.
func (s *Slots) update(ctx context.Context, key string, choose func(others, mine int64) int64) (int64, error) {
	self := s.members.opts.Self.ID
	for {
		counts := map[string]int64{}
		var rev uint64
		e, err := s.kv.Get(ctx, key)
		switch {
		case err == nil:
			rev = e.Revision()
			if err := json.Unmarshal(e.Value(), &counts); err != nil {
				counts = map[string]int64{}
			}
		case errors.Is(err, jetstream.ErrKeyNotFound):
		default:
			return 0, err
		}
		alive := s.members.alive()
		var others int64
		for id, n := range counts {
			if id == self {
				continue
			}
			if !alive[id] {
				delete(counts, id)
				continue
			}
			others += n
		}
		n := choose(others, counts[self])
		if n > 0 {
			counts[self] = n
		} else {
			delete(counts, self)
		}
		b, _ := json.Marshal(counts)
		if rev == 0 {
			_, err = s.kv.Create(ctx, key, b)
		} else {
			_, err = s.kv.Update(ctx, key, b, rev)
		}
		if err == nil {
			return n, nil
		}
		if !store.WrongRevision(err) && !errors.Is(err, jetstream.ErrKeyExists) {
			return 0, err
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
	}
}

// Close stops the limiter and gives back every unused slot.
func (s *Slots) Close(ctx context.Context) {
	s.stop()
	s.wg.Wait()
	s.giveBack(ctx, true)
}
