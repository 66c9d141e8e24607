package queue

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/store"
)

// shortPoll is the least a receive waits for a first message.
const shortPoll = 50 * time.Millisecond

// ReceiveOptions shape one receive.
type ReceiveOptions struct {
	Max        int           // 1 to 10 (SQS), more for event source mappings
	Wait       time.Duration // long poll; zero returns at once
	Visibility *int          // seconds; nil keeps the queue's
}

// Message is one received message.
type Message struct {
	MessageID         string
	ReceiptHandle     string
	Body              string
	MD5OfBody         string
	MD5OfAttributes   string
	MD5OfSystemAttrs  string
	MessageAttributes map[string]Attribute
	SystemAttributes  map[string]Attribute
	// Attributes are the system attributes SQS can return, all of them;
	// the wire layer keeps those asked for.
	Attributes map[string]string
	Size       int
}

// handle is what a receipt handle encodes: which delivery of which
// message, and until when it is surely still that delivery's.
type handle struct {
	Queue    string `json:"q"`
	Seq      uint64 `json:"s"`
	Delivery uint64 `json:"d"`
	Deadline int64  `json:"v"` // unix ms
	Reply    string `json:"r"` // the delivery's JetStream ack subject
}

func (h *handle) encode() string {
	b, _ := json.Marshal(h)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeHandle(queue, s string) (*handle, error) {
	bad := function.Errorf(ErrBadHandle, "The input receipt handle \"%s\" is not a valid receipt handle.", s)
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, bad
	}
	var h handle
	if json.Unmarshal(b, &h) != nil || h.Queue != queue || h.Seq == 0 || h.Delivery == 0 ||
		!strings.HasPrefix(h.Reply, "$JS.ACK.") || !strings.Contains(h.Reply, "."+streamName(queue)+"."+consumerName+".") {
		return nil, bad
	}
	return &h, nil
}

// lease fences a message that was delivered more than once, or whose
// visibility was shortened: the newest delivery's number, its deadline,
// and whether a holder deleted it. Deletes and visibility changes of older
// deliveries read it and stand down; a compare-and-set orders them against
// a concurrent redelivery. JetStream alone would accept a late ack from
// an older delivery (nats-server issue 4786).
type lease struct {
	Delivery uint64 `json:"d"`
	Deadline int64  `json:"v,omitempty"`
	Deleted  bool   `json:"x,omitempty"`
	Changed  bool   `json:"c,omitempty"` // written by a visibility change
}

func leaseKey(queue string, seq uint64) string {
	return queue + "." + strconv.FormatUint(seq, 10)
}

func (m *Manager) readLease(ctx context.Context, key string) (*lease, uint64, error) {
	e, err := m.st.Leases.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read lease: %w", err)
	}
	var l lease
	if err := json.Unmarshal(e.Value(), &l); err != nil {
		return nil, 0, fmt.Errorf("read lease: %w", err)
	}
	return &l, e.Revision(), nil
}

// writeLease sets key to l if it still is at rev (0: absent). It reports
// false when someone else wrote first.
func (m *Manager) writeLease(ctx context.Context, key string, l lease, rev uint64) (bool, error) {
	data, _ := json.Marshal(l)
	var err error
	if rev == 0 {
		_, err = m.st.Leases.Create(ctx, key, data)
	} else {
		_, err = m.st.Leases.Update(ctx, key, data, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("write lease: %w", err)
	}
	return true, nil
}

// claim records delivery d of a message as the newest. It returns false
// when a holder of an older delivery deleted the message meanwhile, and
// whether an older holder had changed the visibility (to be set again).
func (m *Manager) claim(ctx context.Context, key string, d uint64, deadline int64) (ok, changed bool) {
	for range 5 {
		l, rev, err := m.readLease(ctx, key)
		if err != nil {
			break
		}
		if l != nil && l.Deleted {
			return false, false
		}
		if l != nil && l.Delivery >= d {
			return true, false
		}
		won, err := m.writeLease(ctx, key, lease{Delivery: d, Deadline: deadline}, rev)
		if err != nil {
			break
		}
		if won {
			return true, l != nil && l.Changed
		}
	}
	// The store did not answer: deliver anyway (a duplicate, never a loss).
	m.opts.Log.Warn("queue: could not record a redelivery; an older receipt handle may still act on it", "lease", key)
	return true, false
}

// Receive takes up to opt.Max visible messages, waiting up to opt.Wait for
// the first one.
func (m *Manager) Receive(ctx context.Context, name string, opt ReceiveOptions) ([]Message, error) {
	q, err := m.Get(name)
	if err != nil {
		return nil, err
	}
	c, err := m.consumer(ctx, name)
	if err != nil {
		return nil, err
	}
	vis := q.Attrs.VisibilityTimeout
	if opt.Visibility != nil {
		vis = *opt.Visibility
	}
	if opt.Max <= 0 {
		opt.Max = 1
	}
	// A message stored a moment ago may not have reached the consumer
	// yet, so even a short poll waits briefly for one (SQS's own short
	// polls take tens of milliseconds).
	until := time.Now().Add(max(opt.Wait, shortPoll))
	var out []Message
	for {
		// A long poll's message may have filled the batch: a pull of zero
		// is refused by the store, and what was taken would be lost with it.
		n := pullSize(opt.Max, len(out))
		if n == 0 {
			return out, nil
		}
		// Taken before fetching: the store's redelivery clock starts later.
		start := m.now()
		batch, err := c.FetchNoWait(n)
		if err != nil {
			return out, fmt.Errorf("receive: %w", err)
		}
		fetched := m.take(ctx, q, batch, vis, start, false, &out)
		if len(out) >= opt.Max || (len(out) > 0 && fetched == 0) {
			return out, nil
		}
		if fetched > 0 {
			continue // more may be ready
		}
		left := time.Until(until)
		if left < 5*time.Millisecond || ctx.Err() != nil {
			return out, nil
		}
		// Long poll: a single pull that the store answers as soon as one
		// message is ready, then the loop takes what else is ready.
		wctx, cancel := context.WithTimeout(ctx, left)
		batch, err = c.Fetch(1, jetstream.FetchContext(wctx))
		if err != nil {
			cancel()
			if ctx.Err() != nil {
				return out, nil
			}
			return out, fmt.Errorf("receive: %w", err)
		}
		m.take(ctx, q, batch, vis, time.Time{}, true, &out)
		cancel()
	}
}

// pullSize is how many messages the next pull asks for: what the batch
// still lacks, and zero once it is full (never a pull of zero or less).
func pullSize(want, have int) int {
	return max(want-have, 0)
}

// take turns fetched deliveries into messages, moving those received too
// often to the dead-letter queue. It returns how many it fetched. waited
// says the fetch waited for its message: the store started that
// delivery's clock at some unknown moment of the wait, so the clock is
// restarted once the message is here.
func (m *Manager) take(ctx context.Context, q *Queue, batch jetstream.MessageBatch, vis int, start time.Time, waited bool, out *[]Message) int {
	n := 0
	for msg := range batch.Messages() {
		n++
		if r, ok := m.deliver(ctx, q, msg, vis, start, waited); ok {
			*out = append(*out, r)
		}
	}
	return n
}

func (m *Manager) deliver(ctx context.Context, q *Queue, msg jetstream.Msg, vis int, start time.Time, waited bool) (Message, bool) {
	now := m.now()
	if waited {
		// Taken before the reset below reaches the store, so the
		// deadline never falls after the real redelivery.
		start = now
	}
	md, err := msg.Metadata()
	if err != nil {
		_ = msg.Nak()
		return Message{}, false
	}
	var s stored
	if err := json.Unmarshal(msg.Data(), &s); err != nil {
		m.opts.Log.Error("queue: dropping unreadable message", "queue", q.Name, "seq", md.Sequence.Stream, "err", err)
		_ = msg.Term()
		return Message{}, false
	}
	d := md.NumDelivered
	if rp := q.Attrs.Redrive; rp != nil && d > uint64(rp.MaxReceiveCount) {
		m.deadLetter(ctx, q, msg, &s)
		return Message{}, false
	}
	deadline := start.Add(time.Duration(vis) * time.Second)
	// The consumer's ack wait is the queue's visibility timeout; any other
	// is set on the delivery itself.
	reset := vis != q.Attrs.VisibilityTimeout
	if d > 1 {
		ok, changed := m.claim(ctx, leaseKey(q.Name, md.Sequence.Stream), d, deadline.UnixMilli())
		if !ok {
			_ = msg.DoubleAck(ctx) // deleted by an older delivery's holder
			return Message{}, false
		}
		reset = reset || changed
		m.metrics.redelivered.WithLabelValues(q.Name).Inc()
	}
	switch {
	case vis == 0:
		_ = msg.Nak()
	case reset:
		_ = msg.NakWithDelay(time.Duration(vis) * time.Second)
	case waited:
		_ = msg.InProgress() // restarts the ack wait: the visibility timeout
	}
	m.metrics.received.WithLabelValues(q.Name).Inc()
	h := handle{Queue: q.Name, Seq: md.Sequence.Stream, Delivery: d, Deadline: deadline.UnixMilli(), Reply: msg.Reply()}
	first := now.UnixMilli()
	if d > 1 {
		// Not recorded per delivery; the time it first became visible is
		// the closest known.
		first = max(s.Sent, s.VisibleAt)
	}
	return Message{
		MessageID:         s.ID,
		ReceiptHandle:     h.encode(),
		Body:              s.Body,
		MD5OfBody:         s.MD5Body,
		MD5OfAttributes:   s.MD5Attrs,
		MD5OfSystemAttrs:  s.MD5System,
		MessageAttributes: s.Attrs,
		SystemAttributes:  s.System,
		Size:              len(s.Body) + attrsSize(s.Attrs),
		Attributes: map[string]string{
			"ApproximateReceiveCount":          strconv.FormatUint(d, 10),
			"ApproximateFirstReceiveTimestamp": strconv.FormatInt(first, 10),
			"SentTimestamp":                    strconv.FormatInt(s.Sent, 10),
			"SenderId":                         Account,
		},
	}, true
}

// deadLetter moves a message to the queue's dead-letter queue: stored
// there first (under an id, so a repeat after a crash is dropped), then
// removed here.
func (m *Manager) deadLetter(ctx context.Context, q *Queue, msg jetstream.Msg, s *stored) {
	md, _ := msg.Metadata()
	dlq, _ := NameFromARN(q.Attrs.Redrive.DeadLetterTargetArn)
	if _, err := m.Get(dlq); err != nil {
		m.opts.Log.Warn("queue: dead-letter queue missing; message kept", "queue", q.Name, "dlq", dlq)
		_ = msg.NakWithDelay(time.Duration(max(q.Attrs.VisibilityTimeout, 1)) * time.Second)
		return
	}
	s.VisibleAt = 0
	s.DeadLetter = ARN(m.opts.Region, q.Name)
	data, _ := json.Marshal(s)
	out := nats.NewMsg(store.QueueSubject + dlq)
	out.Data = data
	out.Header.Set(jetstream.MsgIDHeader, "dlq."+q.Name+"."+strconv.FormatUint(md.Sequence.Stream, 10))
	if _, err := m.st.JS.PublishMsg(ctx, out); err != nil {
		m.opts.Log.Warn("queue: dead-letter move failed; retried on next receive", "queue", q.Name, "err", err)
		_ = msg.Nak()
		return
	}
	if err := msg.DoubleAck(ctx); err != nil {
		m.opts.Log.Warn("queue: dead-lettered message not removed from source; a duplicate may follow", "queue", q.Name, "err", err)
	}
	m.metrics.deadLettered.WithLabelValues(q.Name).Inc()
}

// DeleteMessage deletes the delivery a receipt handle names. A handle of
// an older delivery of a message received again since does nothing, as on
// SQS (the request succeeds, the newer delivery stays).
func (m *Manager) DeleteMessage(ctx context.Context, name, receipt string) error {
	if _, err := m.Get(name); err != nil {
		return err
	}
	h, err := decodeHandle(name, receipt)
	if err != nil {
		return err
	}
	key := leaseKey(name, h.Seq)
	for range 5 {
		l, rev, err := m.readLease(ctx, key)
		if err != nil {
			return err
		}
		deadline := h.Deadline
		if l != nil {
			if l.Deleted {
				return nil
			}
			if l.Delivery > h.Delivery {
				m.metrics.stale.WithLabelValues(name).Inc()
				return nil
			}
			if l.Delivery == h.Delivery && l.Deadline > 0 {
				deadline = l.Deadline
			}
		}
		if m.now().Add(m.opts.Margin).UnixMilli() < deadline {
			// No redelivery can have started: the store holds the message
			// for this delivery until its deadline.
			return m.settle(ctx, h, "+ACK", name)
		}
		won, err := m.writeLease(ctx, key, lease{Delivery: h.Delivery, Deleted: true}, rev)
		if err != nil {
			return err
		}
		if won {
			return m.settle(ctx, h, "+ACK", name)
		}
	}
	return fmt.Errorf("delete message: too many concurrent deliveries")
}

// ChangeVisibility makes the delivery a handle names visible again after
// seconds (0: at once).
func (m *Manager) ChangeVisibility(ctx context.Context, name, receipt string, seconds int) error {
	if _, err := m.Get(name); err != nil {
		return err
	}
	if seconds < 0 || seconds > MaxVisibility {
		return function.Errorf(ErrInvalidParameter, "Value %d for parameter VisibilityTimeout is invalid. Reason: Must be between 0 and 43200.", seconds)
	}
	h, err := decodeHandle(name, receipt)
	if err != nil {
		return err
	}
	key := leaseKey(name, h.Seq)
	notInflight := function.Errorf(ErrNotInflight, "Value %s for parameter ReceiptHandle is invalid. Reason: Message does not exist or is not available for visibility timeout change.", receipt)
	for range 5 {
		now := m.now()
		l, rev, err := m.readLease(ctx, key)
		if err != nil {
			return err
		}
		deadline := h.Deadline
		if l != nil {
			if l.Deleted || l.Delivery > h.Delivery {
				return notInflight
			}
			if l.Delivery == h.Delivery && l.Deadline > 0 {
				deadline = l.Deadline
			}
		}
		next := now.Add(time.Duration(seconds) * time.Second).UnixMilli()
		// Fence when a redelivery may have begun, or when the handle's own
		// deadline would overstate how long the delivery is ours.
		if now.Add(m.opts.Margin).UnixMilli() >= deadline || next < deadline {
			won, err := m.writeLease(ctx, key, lease{Delivery: h.Delivery, Deadline: next, Changed: true}, rev)
			if err != nil {
				return err
			}
			if !won {
				continue
			}
		}
		if seconds == 0 {
			return m.settle(ctx, h, "-NAK", name)
		}
		return m.settle(ctx, h, fmt.Sprintf(`-NAK {"delay":%d}`, time.Duration(seconds)*time.Second), name)
	}
	return fmt.Errorf("change visibility: too many concurrent deliveries")
}

// settle sends an acknowledgement for a delivery and waits for the store
// to confirm it.
func (m *Manager) settle(ctx context.Context, h *handle, body, queue string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := m.st.NC.RequestWithContext(ctx, h.Reply, []byte(body)); err != nil {
		return fmt.Errorf("settle message: %w", err)
	}
	if body == "+ACK" {
		m.metrics.deleted.WithLabelValues(queue).Inc()
	}
	return nil
}
