// Package esm runs event source mappings: SQS queues feeding batches of
// messages to functions, as Lambda's pollers do. Mappings live in the
// store; every node polls every enabled mapping, sharing its queue.
package esm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/invoke"
	"github.com/stratus-faas/stratus/internal/queue"
	"github.com/stratus-faas/stratus/internal/store"
)

// Errors the wire layer maps.
var (
	ErrNotFound = errors.New("event source mapping not found")
	ErrExists   = errors.New("event source mapping exists")
)

// Limits, as Lambda's for SQS.
const (
	MaxBatchSize     = 10000
	DefaultBatchSize = 10
	MaxWindow        = 300
	// DefaultMaxPollers bounds a mapping's concurrent batches on a node
	// when ScalingConfig does not (Lambda: up to 1,250 per mapping).
	DefaultMaxPollers = 1000
)

// Mapping is one event source mapping as stored.
type Mapping struct {
	UUID               string    `json:"uuid"`
	EventSourceArn     string    `json:"source"`
	Function           string    `json:"function"`
	Qualifier          string    `json:"qualifier,omitempty"`
	BatchSize          int       `json:"batchSize"`
	Window             int       `json:"window"`
	ReportItemFailures bool      `json:"reportItemFailures,omitempty"`
	MaximumConcurrency int       `json:"maximumConcurrency,omitempty"`
	Enabled            bool      `json:"enabled"`
	LastModified       time.Time `json:"lastModified"`
}

// Patch is an update: nil fields stay.
type Patch struct {
	Function           *string
	BatchSize          *int
	Window             *int
	ReportItemFailures *bool
	MaximumConcurrency *int
	Enabled            *bool
}

func (m *Mapping) validate() error {
	if m.BatchSize < 1 || m.BatchSize > MaxBatchSize {
		return function.Errorf(function.ErrInvalid, "BatchSize must be between 1 and %d for SQS", MaxBatchSize)
	}
	if m.Window < 0 || m.Window > MaxWindow {
		return function.Errorf(function.ErrInvalid, "MaximumBatchingWindowInSeconds must be between 0 and %d", MaxWindow)
	}
	if m.BatchSize > 10 && m.Window < 1 {
		return function.Errorf(function.ErrInvalid, "Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10")
	}
	if m.MaximumConcurrency != 0 && (m.MaximumConcurrency < 2 || m.MaximumConcurrency > 1000) {
		return function.Errorf(function.ErrInvalid, "ScalingConfig.MaximumConcurrency must be between 2 and 1000")
	}
	return nil
}

// Manager keeps the mappings and runs their pollers.
type Manager struct {
	kv     jetstream.KeyValue
	queues *queue.Manager
	inv    *invoke.Invoker
	log    *slog.Logger
	now    func() time.Time

	stopWatch func()

	mu      sync.Mutex
	maps    map[string]*entry
	runners map[string]*runner
	results map[string]string // LastProcessingResult, this node's view
	// problems says why polling fails, while it does (this node's view).
	problems map[string]string
	closed   bool
	// stopping holds runners replaced or removed, until they have stopped.
	stopping sync.WaitGroup
}

type entry struct {
	m   *Mapping // nil once deleted
	rev uint64
}

// Open loads the mappings, starts polling the enabled ones and follows
// changes made on any node.
func Open(ctx context.Context, kv jetstream.KeyValue, queues *queue.Manager, inv *invoke.Invoker, log *slog.Logger) (*Manager, error) {
	m := &Manager{kv: kv, queues: queues, inv: inv, log: log, now: time.Now,
		maps: map[string]*entry{}, runners: map[string]*runner{}, results: map[string]string{}, problems: map[string]string{}}
	var err error
	if m.stopWatch, err = store.FollowJSON(ctx, kv, log, m.set); err != nil {
		return nil, err
	}
	return m, nil
}

// set records a mapping and starts, restarts or stops its pollers.
func (m *Manager) set(id string, mp *Mapping, rev uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur, ok := m.maps[id]; ok && cur.rev >= rev {
		return
	}
	m.maps[id] = &entry{m: mp, rev: rev}
	if old := m.runners[id]; old != nil {
		delete(m.runners, id)
		m.stopping.Go(old.stopWithGrace) // waits for a running batch: not under the lock
	}
	if mp != nil && mp.Enabled && !m.closed {
		r := newRunner(m, *mp)
		m.runners[id] = r
		r.start()
	}
}

// Close stops following changes and stops every poller, letting running
// batches finish until ctx ends; a batch cut short returns to its queue
// after the visibility timeout. Safe to call more than once.
func (m *Manager) Close(ctx context.Context) {
	m.stopWatch()
	m.mu.Lock()
	m.closed = true
	rs := make([]*runner, 0, len(m.runners))
	for id, r := range m.runners {
		rs = append(rs, r)
		delete(m.runners, id)
	}
	m.mu.Unlock()
	for _, r := range rs {
		m.stopping.Go(func() { r.stop(ctx) })
	}
	m.stopping.Wait()
}

func (m *Manager) setResult(id, result string) {
	m.mu.Lock()
	m.results[id] = result
	m.mu.Unlock()
}

// setProblem records why a mapping cannot poll its queue, or clears it
// ("") once a poll succeeds again.
func (m *Manager) setProblem(id, problem string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if problem == "" {
		delete(m.problems, id)
		return
	}
	m.problems[id] = problem
	m.results[id] = problem
}

// Problem is why this node cannot poll a mapping's queue now, or "".
func (m *Manager) Problem(id string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.problems[id]
}

// Result is the last processing result this node saw for a mapping.
func (m *Manager) Result(id string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.results[id]; ok {
		return r
	}
	return "No records processed"
}

// Create adds a mapping from an SQS queue to a function.
func (m *Manager) Create(ctx context.Context, mp Mapping) (*Mapping, error) {
	if !queue.IsARN(mp.EventSourceArn) {
		return nil, function.Errorf(function.ErrInvalid, "Unsupported event source: %s (Stratus maps SQS queues)", mp.EventSourceArn)
	}
	qname, err := queue.NameFromARN(mp.EventSourceArn)
	if err != nil {
		return nil, function.Errorf(function.ErrInvalid, "%v", err)
	}
	if _, err := m.queues.Get(qname); err != nil {
		return nil, function.Errorf(function.ErrInvalid, "Error occurred while ReceiveMessage. SQS Error Code: AWS.SimpleQueueService.NonExistentQueue. SQS Error Message: The specified queue does not exist.")
	}
	if mp.BatchSize == 0 {
		mp.BatchSize = DefaultBatchSize
	}
	if err := mp.validate(); err != nil {
		return nil, err
	}
	if _, err := m.inv.Resolve(mp.Function, mp.Qualifier); err != nil {
		return nil, err
	}
	for _, other := range m.List(mp.EventSourceArn, "") {
		if other.Function == mp.Function && other.Qualifier == mp.Qualifier {
			return nil, function.Errorf(ErrExists, "An event source mapping with SQS arn (\" %s \") and function (\" %s \") already exists. Please update or delete the existing mapping with UUID %s", mp.EventSourceArn, mp.Function, other.UUID)
		}
	}
	mp.UUID = uuid.NewString()
	mp.LastModified = m.now()
	data, _ := json.Marshal(&mp)
	rev, err := m.kv.Create(ctx, mp.UUID, data)
	if err != nil {
		return nil, fmt.Errorf("store event source mapping: %w", err)
	}
	m.set(mp.UUID, &mp, rev)
	return &mp, nil
}

// Get returns a mapping.
func (m *Manager) Get(id string) (*Mapping, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.maps[id]
	if e == nil || e.m == nil {
		return nil, function.Errorf(ErrNotFound, "The resource you requested does not exist.")
	}
	cp := *e.m
	return &cp, nil
}

// List returns the mappings of a source, a function, or all, by creation.
func (m *Manager) List(sourceArn, fn string) []*Mapping {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*Mapping
	for _, e := range m.maps {
		if e.m == nil || (sourceArn != "" && e.m.EventSourceArn != sourceArn) || (fn != "" && e.m.Function != fn) {
			continue
		}
		cp := *e.m
		out = append(out, &cp)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UUID < out[j].UUID })
	return out
}

// Update changes a mapping.
func (m *Manager) Update(ctx context.Context, id string, p Patch) (*Mapping, error) {
	for range 5 {
		e, err := m.kv.Get(ctx, id)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, function.Errorf(ErrNotFound, "The resource you requested does not exist.")
		}
		if err != nil {
			return nil, fmt.Errorf("read event source mapping: %w", err)
		}
		var mp Mapping
		if err := json.Unmarshal(e.Value(), &mp); err != nil {
			return nil, fmt.Errorf("read event source mapping: %w", err)
		}
		if p.Function != nil {
			name, q, err := function.ParseRef(*p.Function)
			if err != nil {
				return nil, err
			}
			if _, err := m.inv.Resolve(name, q); err != nil {
				return nil, err
			}
			mp.Function, mp.Qualifier = name, q
		}
		setIf(&mp.BatchSize, p.BatchSize)
		setIf(&mp.Window, p.Window)
		setIf(&mp.MaximumConcurrency, p.MaximumConcurrency)
		setIf(&mp.ReportItemFailures, p.ReportItemFailures)
		setIf(&mp.Enabled, p.Enabled)
		if err := mp.validate(); err != nil {
			return nil, err
		}
		mp.LastModified = m.now()
		data, _ := json.Marshal(&mp)
		rev, err := m.kv.Update(ctx, id, data, e.Revision())
		if errors.Is(err, jetstream.ErrKeyExists) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("store event source mapping: %w", err)
		}
		m.set(id, &mp, rev)
		return &mp, nil
	}
	return nil, fmt.Errorf("event source mapping %s: too many concurrent changes", id)
}

func setIf[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// Delete removes a mapping and stops its pollers.
func (m *Manager) Delete(ctx context.Context, id string) (*Mapping, error) {
	mp, err := m.Get(id)
	if err != nil {
		return nil, err
	}
	if err := m.kv.Delete(ctx, id); err != nil {
		return nil, fmt.Errorf("delete event source mapping: %w", err)
	}
	m.set(id, nil, ^uint64(0)>>1)
	return mp, nil
}

// Collector exports each mapping's pollers on this node.
func (m *Manager) Collector() prometheus.Collector { return pollerCollector{m} }

var descPollers = prometheus.NewDesc("stratus_event_source_pollers", "Pollers running for an event source mapping on this node.", []string{"uuid", "function"}, nil)

type pollerCollector struct{ m *Manager }

func (c pollerCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descPollers }

func (c pollerCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	for id, r := range c.m.runners {
		ch <- prometheus.MustNewConstMetric(descPollers, prometheus.GaugeValue, float64(r.pollers.Load()), id, r.mp.Function)
	}
}
