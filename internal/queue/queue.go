// Package queue keeps SQS standard queues on JetStream: one work-queue
// stream per queue, one shared pull consumer whose ack wait is the
// visibility timeout, a delay stream for messages not yet due, and leases
// that fence redelivered messages against late deletes. Several Stratus
// nodes on one NATS share every queue.
package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/store"
)

// Errors the wire layer maps to SQS error codes. Each is wrapped with the
// message the client sees.
var (
	ErrNoQueue          = errors.New("queue does not exist")
	ErrExists           = errors.New("queue already exists")
	ErrInvalidAttrName  = errors.New("invalid attribute name")
	ErrInvalidAttrValue = errors.New("invalid attribute value")
	ErrInvalidParameter = errors.New("invalid parameter value")
	ErrInvalidContents  = errors.New("invalid message contents")
	ErrBadHandle        = errors.New("receipt handle is invalid")
	ErrNotInflight      = errors.New("message not in flight")
	ErrUnsupported      = errors.New("unsupported operation")
)

// Account is the account id in queue URLs and ARNs.
const Account = "000000000000"

// Limits and defaults, as on SQS.
const (
	MaxMessageSize    = 262144
	MaxBatchEntries   = 10
	MaxReceive        = 10
	MaxWaitSeconds    = 20
	MaxDelaySeconds   = 900
	MaxVisibility     = 43200
	MaxAttributes     = 10
	defaultVisibility = 30
	defaultRetention  = 345600
)

// Attributes are a queue's settable attributes.
type Attributes struct {
	VisibilityTimeout             int            `json:"VisibilityTimeout"`
	MessageRetentionPeriod        int            `json:"MessageRetentionPeriod"`
	DelaySeconds                  int            `json:"DelaySeconds"`
	ReceiveMessageWaitTimeSeconds int            `json:"ReceiveMessageWaitTimeSeconds"`
	MaximumMessageSize            int            `json:"MaximumMessageSize"`
	Redrive                       *RedrivePolicy `json:"RedrivePolicy,omitempty"`
	// Kept as given and returned, with no effect here (no IAM, no KMS).
	Opaque map[string]string `json:"Opaque,omitempty"`
}

// RedrivePolicy moves a message to a dead-letter queue once it has been
// received more than MaxReceiveCount times.
type RedrivePolicy struct {
	DeadLetterTargetArn string `json:"deadLetterTargetArn"`
	MaxReceiveCount     int    `json:"maxReceiveCount"`
}

// Queue is one queue's definition as stored.
type Queue struct {
	Name     string            `json:"name"`
	Attrs    Attributes        `json:"attrs"`
	Tags     map[string]string `json:"tags,omitempty"`
	Created  int64             `json:"created"`
	Modified int64             `json:"modified"`
}

func defaults() Attributes {
	return Attributes{
		VisibilityTimeout:      defaultVisibility,
		MessageRetentionPeriod: defaultRetention,
		MaximumMessageSize:     MaxMessageSize,
	}
}

// opaqueAttrs are accepted and echoed: they configure AWS services Stratus
// has no counterpart for.
var opaqueAttrs = map[string]bool{
	"Policy": true, "KmsMasterKeyId": true, "KmsDataKeyReusePeriodSeconds": true,
	"SqsManagedSseEnabled": true, "RedriveAllowPolicy": true,
}

// apply sets attributes given by name on a, validating each as SQS does.
func (a *Attributes) apply(in map[string]string, region string) error {
	for name, v := range in {
		intIn := func(lo, hi int) (int, error) {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n < lo || n > hi {
				return 0, function.Errorf(ErrInvalidAttrValue, "Invalid value for the parameter %s.", name)
			}
			return n, nil
		}
		var err error
		switch name {
		case "VisibilityTimeout":
			a.VisibilityTimeout, err = intIn(0, MaxVisibility)
		case "MessageRetentionPeriod":
			a.MessageRetentionPeriod, err = intIn(60, 1209600)
		case "DelaySeconds":
			a.DelaySeconds, err = intIn(0, MaxDelaySeconds)
		case "ReceiveMessageWaitTimeSeconds":
			a.ReceiveMessageWaitTimeSeconds, err = intIn(0, MaxWaitSeconds)
		case "MaximumMessageSize":
			a.MaximumMessageSize, err = intIn(1024, MaxMessageSize)
		case "RedrivePolicy":
			if strings.TrimSpace(v) == "" {
				a.Redrive = nil
				continue
			}
			var rp struct {
				Target string          `json:"deadLetterTargetArn"`
				Max    json.RawMessage `json:"maxReceiveCount"`
			}
			if json.Unmarshal([]byte(v), &rp) != nil || rp.Target == "" || len(rp.Max) == 0 {
				return function.Errorf(ErrInvalidParameter, "Value %s for parameter RedrivePolicy is invalid. Reason: Redrive policy is not a valid JSON map with deadLetterTargetArn and maxReceiveCount.", v)
			}
			n, convErr := strconv.Atoi(strings.Trim(string(rp.Max), `"`))
			if convErr != nil || n < 1 || n > 1000 {
				return function.Errorf(ErrInvalidParameter, "Value %s for parameter RedrivePolicy is invalid. Reason: Invalid value for maxReceiveCount: %s, valid values are from 1 to 1000 both inclusive.", v, rp.Max)
			}
			if _, err := NameFromARN(rp.Target); err != nil {
				return function.Errorf(ErrInvalidParameter, "Value %s for parameter RedrivePolicy is invalid. Reason: Invalid value for deadLetterTargetArn.", v)
			}
			a.Redrive = &RedrivePolicy{DeadLetterTargetArn: rp.Target, MaxReceiveCount: n}
		case "FifoQueue", "ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit":
			return function.Errorf(ErrInvalidAttrName, "FIFO queues are not supported by Stratus; attribute %s", name)
		default:
			if !opaqueAttrs[name] {
				return function.Errorf(ErrInvalidAttrName, "Unknown Attribute %s.", name)
			}
			if a.Opaque == nil {
				a.Opaque = map[string]string{}
			}
			a.Opaque[name] = v
		}
		if err != nil {
			return err
		}
	}
	return nil
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)

// ValidName reports whether name is a valid standard queue name.
func ValidName(name string) error {
	if strings.HasSuffix(name, ".fifo") {
		return function.Errorf(ErrInvalidParameter, "FIFO queues are not supported by Stratus")
	}
	if !nameRE.MatchString(name) {
		return function.Errorf(ErrInvalidParameter, "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length")
	}
	return nil
}

// ARN returns a queue's ARN.
func ARN(region, name string) string {
	return "arn:aws:sqs:" + region + ":" + Account + ":" + name
}

// NameFromARN returns the queue name of an SQS ARN.
func NameFromARN(arn string) (string, error) {
	parts := strings.Split(arn, ":")
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "sqs" {
		return "", function.Errorf(ErrInvalidParameter, "not an SQS queue ARN: %s", arn)
	}
	if err := ValidName(parts[5]); err != nil {
		return "", err
	}
	return parts[5], nil
}

// IsARN reports whether s names an SQS queue by ARN.
func IsARN(s string) bool { return strings.HasPrefix(s, "arn:aws:sqs:") }

// Options configure the manager.
type Options struct {
	Region string
	Log    *slog.Logger
	Now    func() time.Time
	// Margin is how close to its visibility deadline a delete or change
	// must fence against a redelivery (covers clock differences between
	// nodes); zero means two seconds.
	Margin time.Duration
}

// Manager owns the queues.
type Manager struct {
	st      *store.Store
	opts    Options
	now     func() time.Time
	metrics *Metrics

	stopWatch func()
	delay     *delayMover

	mu     sync.RWMutex
	queues map[string]*entry
	cons   map[string]jetstream.Consumer
}

type entry struct {
	q   *Queue // nil once deleted
	rev uint64
}

// Open loads the queues, follows changes and starts moving due delayed
// messages.
func Open(ctx context.Context, st *store.Store, m *Metrics, opts Options) (*Manager, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Margin <= 0 {
		opts.Margin = 2 * time.Second
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	mgr := &Manager{st: st, opts: opts, now: opts.Now, metrics: m,
		queues: map[string]*entry{}, cons: map[string]jetstream.Consumer{}}
	var err error
	if mgr.stopWatch, err = store.FollowJSON(ctx, st.Queues, opts.Log, mgr.set); err != nil {
		return nil, err
	}
	mgr.delay, err = startDelayMover(ctx, mgr)
	if err != nil {
		mgr.Close()
		return nil, err
	}
	return mgr, nil
}

// Close stops the delay mover and the watch.
func (m *Manager) Close() {
	if m.delay != nil {
		m.delay.stop()
	}
	m.stopWatch()
}

func (m *Manager) set(name string, q *Queue, rev uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur, ok := m.queues[name]; ok && cur.rev >= rev {
		return
	}
	m.queues[name] = &entry{q: q, rev: rev}
	if q == nil {
		delete(m.cons, name)
	}
}

// Get returns a queue (a shared read-only value).
func (m *Manager) Get(name string) (*Queue, error) {
	m.mu.RLock()
	e := m.queues[name]
	m.mu.RUnlock()
	if e == nil || e.q == nil {
		return nil, function.Errorf(ErrNoQueue, "The specified queue does not exist.")
	}
	return e.q, nil
}

// List returns the names of the queues starting with prefix, sorted.
func (m *Manager) List(prefix string) []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []string
	for name, e := range m.queues {
		if e.q != nil && strings.HasPrefix(name, prefix) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// Region is the region of the queues' ARNs.
func (m *Manager) Region() string { return m.opts.Region }

func streamName(q string) string { return store.QueueStreamPrefix + q }

const consumerName = "sqs"

func (m *Manager) streamConfig(q *Queue) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:      streamName(q.Name),
		Subjects:  []string{store.QueueSubject + q.Name},
		Replicas:  m.st.Replicas,
		Storage:   jetstream.FileStorage,
		Retention: jetstream.WorkQueuePolicy,
		MaxAge:    time.Duration(q.Attrs.MessageRetentionPeriod) * time.Second,
		// Delayed and dead-lettered moves carry an id, so a move repeated
		// after a crash is stored once.
		Duplicates: 2 * time.Minute,
	}
}

func consumerConfig(q *Queue) jetstream.ConsumerConfig {
	vis := time.Duration(q.Attrs.VisibilityTimeout) * time.Second
	if vis <= 0 {
		// JetStream has no zero ack wait; a message received with a zero
		// visibility timeout is released at once (see Receive).
		vis = time.Second
	}
	return jetstream.ConsumerConfig{
		Durable:   consumerName,
		AckPolicy: jetstream.AckExplicitPolicy,
		AckWait:   vis,
		// SQS bounds a standard queue at 120,000 messages in flight.
		MaxAckPending: 120000,
		MaxWaiting:    4096,
		// Redelivery is bounded by the redrive policy and the retention
		// period, both enforced by Stratus, not by JetStream's MaxDeliver.
		MaxDeliver: -1,
	}
}

// Create makes a queue, or returns the existing one when its attributes
// are the same, as SQS does.
func (m *Manager) Create(ctx context.Context, name string, attrs, tags map[string]string) (*Queue, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	a := defaults()
	if err := a.apply(attrs, m.opts.Region); err != nil {
		return nil, err
	}
	if err := m.checkRedrive(name, a.Redrive); err != nil {
		return nil, err
	}
	if cur, err := m.Get(name); err == nil {
		if !sameAttrs(cur.Attrs, a, attrs) {
			return nil, function.Errorf(ErrExists, "A queue already exists with the same name and a different value for attribute(s) %s", strings.Join(keys(attrs), ", "))
		}
		return cur, nil
	}
	now := m.now().Unix()
	if err := m.st.Writable(); err != nil {
		return nil, err
	}
	q := &Queue{Name: name, Attrs: a, Tags: tags, Created: now, Modified: now}
	if _, err := m.st.JS.CreateOrUpdateStream(ctx, m.streamConfig(q)); err != nil {
		return nil, fmt.Errorf("create queue stream: %w", err)
	}
	if _, err := m.st.JS.CreateOrUpdateConsumer(ctx, streamName(name), consumerConfig(q)); err != nil {
		return nil, fmt.Errorf("create queue consumer: %w", err)
	}
	data, _ := json.Marshal(q)
	rev, err := m.st.Queues.Create(ctx, name, data)
	if errors.Is(err, jetstream.ErrKeyExists) {
		// Created concurrently (another node): same rule as above.
		e, gerr := m.st.Queues.Get(ctx, name)
		if gerr != nil {
			return nil, fmt.Errorf("read queue: %w", gerr)
		}
		var cur Queue
		if err := json.Unmarshal(e.Value(), &cur); err != nil {
			return nil, fmt.Errorf("read queue: %w", err)
		}
		m.set(name, &cur, e.Revision())
		return m.Create(ctx, name, attrs, tags)
	}
	if err != nil {
		return nil, fmt.Errorf("store queue: %w", err)
	}
	m.set(name, q, rev)
	return q, nil
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// sameAttrs reports whether the attributes given to a repeated create
// match the queue's.
func sameAttrs(cur, want Attributes, given map[string]string) bool {
	if len(given) == 0 {
		return true
	}
	cj, _ := json.Marshal(cur)
	wj, _ := json.Marshal(want)
	return string(cj) == string(wj)
}

func (m *Manager) checkRedrive(name string, rp *RedrivePolicy) error {
	if rp == nil {
		return nil
	}
	dlq, _ := NameFromARN(rp.DeadLetterTargetArn)
	if dlq == name {
		return function.Errorf(ErrInvalidParameter, "Value for parameter RedrivePolicy is invalid. Reason: Dead-letter target can not be the queue itself.")
	}
	if _, err := m.Get(dlq); err != nil {
		return function.Errorf(ErrInvalidParameter, "Value %s for parameter RedrivePolicy is invalid. Reason: Dead letter target does not exist.", rp.DeadLetterTargetArn)
	}
	return nil
}

// SetAttributes changes attributes of a queue.
func (m *Manager) SetAttributes(ctx context.Context, name string, attrs map[string]string) error {
	return m.update(ctx, name, func(q *Queue) error {
		if err := q.Attrs.apply(attrs, m.opts.Region); err != nil {
			return err
		}
		if err := m.checkRedrive(name, q.Attrs.Redrive); err != nil {
			return err
		}
		q.Modified = m.now().Unix()
		if _, err := m.st.JS.UpdateStream(ctx, m.streamConfig(q)); err != nil {
			return fmt.Errorf("update queue stream: %w", err)
		}
		if _, err := m.st.JS.UpdateConsumer(ctx, streamName(name), consumerConfig(q)); err != nil {
			return fmt.Errorf("update queue consumer: %w", err)
		}
		return nil
	})
}

// SetTags adds or replaces tags; UntagQueue passes remove.
func (m *Manager) SetTags(ctx context.Context, name string, add map[string]string, remove []string) error {
	return m.update(ctx, name, func(q *Queue) error {
		if q.Tags == nil {
			q.Tags = map[string]string{}
		}
		for k, v := range add {
			q.Tags[k] = v
		}
		for _, k := range remove {
			delete(q.Tags, k)
		}
		return nil
	})
}

// update reads a queue, changes it and stores it if nobody else changed
// it meanwhile, reading again when someone did.
func (m *Manager) update(ctx context.Context, name string, change func(*Queue) error) error {
	for range 5 {
		e, err := m.st.Queues.Get(ctx, name)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return function.Errorf(ErrNoQueue, "The specified queue does not exist.")
		}
		if err != nil {
			return fmt.Errorf("read queue: %w", err)
		}
		var q Queue
		if err := json.Unmarshal(e.Value(), &q); err != nil {
			return fmt.Errorf("read queue: %w", err)
		}
		if err := change(&q); err != nil {
			return err
		}
		data, _ := json.Marshal(&q)
		rev, err := m.st.Queues.Update(ctx, name, data, e.Revision())
		if errors.Is(err, jetstream.ErrKeyExists) {
			continue
		}
		if err != nil {
			return fmt.Errorf("store queue: %w", err)
		}
		m.set(name, &q, rev)
		return nil
	}
	return fmt.Errorf("queue %s: too many concurrent changes", name)
}

// Delete removes a queue and its messages.
func (m *Manager) Delete(ctx context.Context, name string) error {
	if _, err := m.Get(name); err != nil {
		return err
	}
	if err := m.st.Queues.Delete(ctx, name); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("delete queue: %w", err)
	}
	m.set(name, nil, ^uint64(0)>>1)
	if err := m.st.JS.DeleteStream(ctx, streamName(name)); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("delete queue stream: %w", err)
	}
	if err := m.st.Delay.Purge(ctx, jetstream.WithPurgeSubject(store.DelaySubject+name)); err != nil {
		return fmt.Errorf("purge delayed messages: %w", err)
	}
	// Forget the tombstone's revision so that a queue created again is seen.
	m.mu.Lock()
	delete(m.queues, name)
	m.mu.Unlock()
	return nil
}

// Purge deletes every message of a queue, delayed ones included.
func (m *Manager) Purge(ctx context.Context, name string) error {
	if _, err := m.Get(name); err != nil {
		return err
	}
	s, err := m.st.JS.Stream(ctx, streamName(name))
	if err != nil {
		return fmt.Errorf("queue stream: %w", err)
	}
	if err := s.Purge(ctx); err != nil {
		return fmt.Errorf("purge queue: %w", err)
	}
	if err := m.st.Delay.Purge(ctx, jetstream.WithPurgeSubject(store.DelaySubject+name)); err != nil {
		return fmt.Errorf("purge delayed messages: %w", err)
	}
	return nil
}

// Stats are a queue's approximate counts.
type Stats struct {
	Visible   int64         // ready to receive
	InFlight  int64         // received, neither deleted nor visible again
	Delayed   int64         // sent with a delay not yet over
	OldestAge time.Duration // age of the oldest message kept, in flight or not
}

// Stats reads the counts from the queue's stream and consumer. A message
// whose visibility timeout ran out counts as in flight until the next
// receive takes it up again.
func (m *Manager) Stats(ctx context.Context, name string) (Stats, error) {
	if _, err := m.Get(name); err != nil {
		return Stats{}, err
	}
	var st Stats
	s, err := m.st.JS.Stream(ctx, streamName(name))
	if err != nil {
		return st, fmt.Errorf("queue stream: %w", err)
	}
	info := s.CachedInfo()
	c, err := m.consumer(ctx, name)
	if err != nil {
		return st, err
	}
	ci, err := c.Info(ctx)
	if err != nil {
		return st, fmt.Errorf("queue consumer: %w", err)
	}
	st.InFlight = int64(ci.NumAckPending)
	st.Visible = max(int64(info.State.Msgs)-st.InFlight, 0)
	if info.State.Msgs > 0 && !info.State.FirstTime.IsZero() {
		st.OldestAge = max(m.now().Sub(info.State.FirstTime), 0)
	}
	di, err := m.st.Delay.Info(ctx, jetstream.WithSubjectFilter(store.DelaySubject+name))
	if err != nil {
		return st, fmt.Errorf("delay stream: %w", err)
	}
	st.Delayed = int64(di.State.Subjects[store.DelaySubject+name])
	return st, nil
}

func (m *Manager) consumer(ctx context.Context, name string) (jetstream.Consumer, error) {
	m.mu.RLock()
	c := m.cons[name]
	m.mu.RUnlock()
	if c != nil {
		return c, nil
	}
	c, err := m.st.JS.Consumer(ctx, streamName(name), consumerName)
	if errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, function.Errorf(ErrNoQueue, "The specified queue does not exist.")
	}
	if err != nil {
		return nil, fmt.Errorf("queue consumer: %w", err)
	}
	m.mu.Lock()
	if e := m.queues[name]; e != nil && e.q != nil {
		m.cons[name] = c
	}
	m.mu.Unlock()
	return c, nil
}
