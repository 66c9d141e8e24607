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

	mu    sync.Mutex
	keys  map[string]*slot
	kick  chan struct{} // a slot was let go: write it back now
	armed bool          // run will look again without a kick

	stop context.CancelFunc
	wg   sync.WaitGroup
}

type slot struct {
	lease sync.Mutex // one lease or return at a time per key on this node

	// under Slots.mu
	held, used int64
	lastUsed   time.Time // the last release
	wanted     time.Time // when another node was last refused a slot
	limit      int64     // the limit at the last Acquire
	written    int64     // what the store last took this node to hold
	wantSaid   time.Time // when this node last said it was refused
}

// wantEvery spaces a refused node's notes in the record: one is enough
// for the others to give back, and each is a write.
const wantEvery = 500 * time.Millisecond

// wantedFor is how long after another node was refused a slot a node
// holding more than its even share gives slots back as they come free.
const wantedFor = 2 * time.Second

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
	s := &Slots{kv: kv, members: members, now: members.opts.Now, log: log, linger: linger, keys: map[string]*slot{}, kick: make(chan struct{}, 1)}
	ctx, stop := context.WithCancel(context.Background())
	s.stop = stop
	s.wg.Go(func() { s.run(ctx) })
	s.wg.Go(func() { s.follow(ctx) })
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
	sl.limit = limit
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
	s.mu.Lock()
	sayWant := s.now().Sub(sl.wantSaid) >= wantEvery
	if sayWant {
		sl.wantSaid = s.now()
	}
	s.mu.Unlock()
	n, err := s.update(ctx, key, used+1, sayWant, func(others, mine int64) int64 {
		free := limit - others
		want := used + 1 + min(max((free-used)/int64(4*s.members.count()), 0), 16)
		// Slots in use stay held even if the limit was lowered meanwhile.
		return max(min(want, free), used)
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		// The store cannot be reached: admit within an even share.
		s.log.Debug("cluster: lease slots", "key", key, "err", err)
		if share := limit / int64(s.members.count()); store.Unavailable(err) && sl.used < max(share, held) {
			sl.used++
			return true
		}
		return false
	}
	sl.held, sl.written = n, n
	if sl.used < sl.held {
		sl.used++
		if sl.used < sl.held {
			s.wake() // leased ahead: unused until taken
		}
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
	s.wake()
	// Another node was refused lately: a slot above this node's even
	// share goes back rather than to this node's next caller.
	if sl.held > sl.used && s.now().Sub(sl.wanted) < wantedFor {
		if live := int64(s.members.count()); sl.held > (sl.limit+live-1)/live {
			sl.held--
			select {
			case s.kick <- struct{}{}:
			default:
			}
		}
	}
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

// run gives back slots held unused for Linger. It wakes only while some
// slot is held unused (or on a kick): an idle node does not poll.
func (s *Slots) run(ctx context.Context) {
	for {
		var tick <-chan time.Time
		s.mu.Lock()
		s.armed = false
		for _, sl := range s.keys {
			if sl.held > sl.used || sl.held < sl.written {
				s.armed = true
				break
			}
		}
		armed := s.armed
		s.mu.Unlock()
		var t *time.Timer
		if armed {
			t = time.NewTimer(s.linger / 4)
			tick = t.C
		}
		select {
		case <-ctx.Done():
			if t != nil {
				t.Stop()
			}
			return
		case <-tick:
		case <-s.kick:
		}
		if t != nil {
			t.Stop()
		}
		s.giveBack(ctx, false)
	}
}

// wake makes run look again, once per stretch of slots held unused.
// Called with s.mu held.
func (s *Slots) wake() {
	if s.armed {
		return
	}
	s.armed = true
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *Slots) giveBack(ctx context.Context, all bool) {
	now := s.now()
	var keys []string
	s.mu.Lock()
	for k, sl := range s.keys {
		if sl.held > sl.used && (all || now.Sub(sl.lastUsed) >= s.linger) || sl.held < sl.written {
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
		n, err := s.update(lctx, k, 0, false, func(_, _ int64) int64 {
			s.mu.Lock()
			defer s.mu.Unlock()
			// Lowered here, before the write: a caller must not take a
			// slot the record is about to give away.
			if all || s.now().Sub(sl.lastUsed) >= s.linger {
				sl.held = sl.used
			}
			return sl.held
		})
		cancel()
		if err == nil {
			s.mu.Lock()
			sl.written = n
			s.mu.Unlock()
		}
		sl.lease.Unlock()
	}
}

// record is what the store keeps of one limit: the slots each live node
// holds, and the nodes refused a slot lately (each with a number it
// raises at every refusal, so that the others notice a fresh one).
type record struct {
	Held map[string]int64 `json:"held"`
	Want map[string]int64 `json:"want,omitempty"`
}

// update rewrites this node's count of key to what choose makes of the
// other live nodes' total and its own, compare-and-set; the record also
// drops the counts of nodes no longer alive. A node refused (choose
// leaves it fewer than it asked for, want) says so in the record.
func (s *Slots) update(ctx context.Context, key string, want int64, sayWant bool, choose func(others, mine int64) int64) (int64, error) {
	self := s.members.opts.Self.ID
	for {
		var r record
		var rev uint64
		e, err := s.kv.Get(ctx, key)
		switch {
		case err == nil:
			rev = e.Revision()
			_ = json.Unmarshal(e.Value(), &r)
		case errors.Is(err, jetstream.ErrKeyNotFound):
		default:
			return 0, err
		}
		if r.Held == nil {
			r.Held = map[string]int64{}
		}
		alive := s.members.alive()
		var others int64
		changed := false
		for id, n := range r.Held {
			if id == self {
				continue
			}
			if !alive[id] {
				delete(r.Held, id)
				changed = true
				continue
			}
			others += n
		}
		for id := range r.Want {
			if !alive[id] {
				delete(r.Want, id)
			}
		}
		n := choose(others, r.Held[self])
		refused := want > 0 && n < want
		if n == r.Held[self] && !changed && !(refused && sayWant) && (refused || r.Want[self] == 0) {
			return n, nil // nothing to write
		}
		if n > 0 {
			r.Held[self] = n
		} else {
			delete(r.Held, self)
		}
		if refused {
			if r.Want == nil {
				r.Want = map[string]int64{}
			}
			r.Want[self]++
		} else {
			delete(r.Want, self)
		}
		b, _ := json.Marshal(r)
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

// follow keeps, for each limit, when another node was last refused.
func (s *Slots) follow(ctx context.Context) {
	w, err := s.kv.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		s.log.Warn("cluster: follow concurrency records", "err", err)
		return
	}
	defer func() { _ = w.Stop() }()
	self := s.members.opts.Self.ID
	seen := map[string]map[string]int64{}
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			var r record
			if json.Unmarshal(e.Value(), &r) != nil {
				continue
			}
			fresh := false
			for id, n := range r.Want {
				if id != self && n > seen[e.Key()][id] {
					fresh = true
				}
			}
			seen[e.Key()] = r.Want
			if fresh {
				s.mu.Lock()
				if sl := s.keys[e.Key()]; sl != nil {
					sl.wanted = s.now()
				}
				s.mu.Unlock()
			}
		}
	}
}

// Close stops the limiter and gives back every unused slot.
func (s *Slots) Close(ctx context.Context) {
	s.stop()
	s.wg.Wait()
	s.giveBack(ctx, true)
}
