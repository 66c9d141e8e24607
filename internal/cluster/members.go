// Package cluster is what the nodes of one Stratus cluster know of each
// other, through the store they share: which nodes are alive and how
// loaded (each puts itself in a bucket every few seconds), how the
// provisioned instances of a function are split among them, and the
// concurrency each holds of a limit that binds them all.
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Node is one node as it says itself.
type Node struct {
	Name string `json:"name"`
	// ID is the node's name and start: a node that restarts is a new
	// member, and what the old one held is let go.
	ID             string    `json:"id"`
	API            string    `json:"api,omitempty"`
	HTTP           string    `json:"http,omitempty"`
	Version        string    `json:"version,omitempty"`
	Started        time.Time `json:"started"`
	Instances      int64     `json:"instances"`
	InFlight       int64     `json:"inFlight"`
	MaxConcurrency int       `json:"maxConcurrency,omitempty"`
	// Provisioned counts its ready provisioned instances by
	// "function:version".
	Provisioned map[string]int `json:"provisioned,omitempty"`

	seen time.Time // when this node last heard from it (its own clock)
}

// Load is what a node reports of itself at each beat.
type Load struct {
	Instances, InFlight int64
	Provisioned         map[string]int
}

// Options configure membership.
type Options struct {
	Self Node
	Load func() Load
	// TTL is how long a node that stopped beating is still taken to be
	// alive; it beats every TTL/4.
	TTL time.Duration
	Now func() time.Time
	Log *slog.Logger
	// Changed is told when the set of live nodes changes.
	Changed func()
}

// Members keeps the live nodes of the cluster.
type Members struct {
	kv   jetstream.KeyValue
	opts Options
	key  string

	mu    sync.Mutex
	nodes map[string]Node // by key
	live  []string        // IDs at the last look, sorted

	stop context.CancelFunc
	wg   sync.WaitGroup
}

var keyUnsafe = regexp.MustCompile(`[^-_=a-zA-Z0-9]`)

// Join puts this node in the bucket, follows the others, and beats
// until Leave.
func Join(ctx context.Context, kv jetstream.KeyValue, o Options) (*Members, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.TTL <= 0 {
		o.TTL = 10 * time.Second
	}
	if o.Self.ID == "" {
		o.Self.ID = o.Self.Name + "@" + strconv.FormatInt(o.Now().UnixNano(), 36)
	}
	m := &Members{kv: kv, opts: o, key: keyUnsafe.ReplaceAllString(o.Self.Name, "_"), nodes: map[string]Node{}}
	if err := m.beat(ctx); err != nil {
		return nil, fmt.Errorf("join the cluster: %w", err)
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("follow the cluster's nodes: %w", err)
	}
	// Up to date with the nodes there are before returning.
	for e := range w.Updates() {
		if e == nil {
			break
		}
		m.apply(e)
	}
	m.check()
	runCtx, stop := context.WithCancel(context.Background())
	m.stop = stop
	m.wg.Go(func() {
		defer func() { _ = w.Stop() }()
		for {
			select {
			case <-runCtx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e != nil {
					m.apply(e)
					m.check()
				}
			}
		}
	})
	m.wg.Go(func() { m.run(runCtx) })
	return m, nil
}

func (m *Members) run(ctx context.Context) {
	t := time.NewTicker(m.opts.TTL / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		bctx, cancel := context.WithTimeout(ctx, m.opts.TTL/4)
		if err := m.beat(bctx); err != nil && ctx.Err() == nil {
			m.opts.Log.Debug("cluster: beat", "err", err)
		}
		cancel()
		m.check()
	}
}

func (m *Members) beat(ctx context.Context) error {
	self := m.opts.Self
	if m.opts.Load != nil {
		l := m.opts.Load()
		self.Instances, self.InFlight, self.Provisioned = l.Instances, l.InFlight, l.Provisioned
	}
	b, err := json.Marshal(self)
	if err != nil {
		return err
	}
	_, err = m.kv.Put(ctx, m.key, b)
	return err
}

func (m *Members) apply(e jetstream.KeyValueEntry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		delete(m.nodes, e.Key())
		return
	}
	var n Node
	if err := json.Unmarshal(e.Value(), &n); err != nil {
		return
	}
	n.seen = m.opts.Now()
	m.nodes[e.Key()] = n
}

// check tells Changed when the live set moved.
func (m *Members) check() {
	ids := make([]string, 0, 4)
	for _, n := range m.Live() {
		ids = append(ids, n.ID)
	}
	m.mu.Lock()
	same := slices.Equal(ids, m.live)
	m.live = ids
	m.mu.Unlock()
	if !same && m.opts.Changed != nil {
		m.opts.Changed()
	}
}

// Self is this node.
func (m *Members) Self() Node { return m.opts.Self }

// Live is every node alive, this one included, sorted by name.
func (m *Members) Live() []Node {
	now := m.opts.Now()
	m.mu.Lock()
	out := make([]Node, 0, len(m.nodes)+1)
	for _, n := range m.nodes {
		if n.ID != m.opts.Self.ID && now.Sub(n.seen) < m.opts.TTL {
			out = append(out, n)
		}
	}
	m.mu.Unlock()
	self := m.opts.Self
	if m.opts.Load != nil {
		l := m.opts.Load()
		self.Instances, self.InFlight, self.Provisioned = l.Instances, l.InFlight, l.Provisioned
	}
	out = append(out, self)
	slices.SortFunc(out, func(a, b Node) int {
		if a.Name != b.Name {
			if a.Name < b.Name {
				return -1
			}
			return 1
		}
		if a.ID < b.ID {
			return -1
		}
		return 1
	})
	return out
}

// count is how many nodes are alive, this one included (no load read:
// for the invocation path).
func (m *Members) count() int {
	now := m.opts.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 1
	for _, x := range m.nodes {
		if x.ID != m.opts.Self.ID && now.Sub(x.seen) < m.opts.TTL {
			n++
		}
	}
	return n
}

// alive reports the IDs of the live nodes.
func (m *Members) alive() map[string]bool {
	now := m.opts.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]bool{m.opts.Self.ID: true}
	for _, n := range m.nodes {
		if now.Sub(n.seen) < m.opts.TTL {
			out[n.ID] = true
		}
	}
	return out
}

// Share is this node's part of n things split over the live nodes: the
// parts differ by at most one and add up to n.
func (m *Members) Share(n int) int {
	live := m.Live()
	k := len(live)
	i := slices.IndexFunc(live, func(x Node) bool { return x.ID == m.opts.Self.ID })
	part := n / k
	if i < n%k {
		part++
	}
	return part
}

// Leave stops beating and takes this node out at once (a graceful stop:
// the others need not wait for it to expire).
func (m *Members) Leave(ctx context.Context) {
	m.stop()
	m.wg.Wait()
	if err := m.kv.Delete(ctx, m.key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		m.opts.Log.Debug("cluster: leave", "err", err)
	}
}
