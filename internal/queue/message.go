package queue

import (
	"context"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/recursion"
	"github.com/stratus-faas/stratus/internal/store"
)

// Attribute is a message attribute value, in the JSON protocol's shape
// (binary values are base64 in JSON).
type Attribute struct {
	DataType         string   `json:"DataType"`
	StringValue      *string  `json:"StringValue,omitempty"`
	BinaryValue      []byte   `json:"BinaryValue,omitempty"`
	StringListValues []string `json:"StringListValues,omitempty"`
	BinaryListValues [][]byte `json:"BinaryListValues,omitempty"`
}

// SendEntry is one message to send.
type SendEntry struct {
	ID           string // batch entry id, echoed in the result
	Body         string
	DelaySeconds *int
	Attributes   map[string]Attribute
	System       map[string]Attribute // AWSTraceHeader
}

// SendResult is the outcome of one entry.
type SendResult struct {
	ID               string
	MessageID        string
	MD5OfBody        string
	MD5OfAttributes  string
	MD5OfSystemAttrs string
	Err              error
}

// stored is a message as kept in the queue's stream.
type stored struct {
	ID         string               `json:"id"`
	Body       string               `json:"b"`
	Attrs      map[string]Attribute `json:"a,omitempty"`
	System     map[string]Attribute `json:"s,omitempty"`
	Sent       int64                `json:"t"` // unix ms
	MD5Body    string               `json:"m"`
	MD5Attrs   string               `json:"ma,omitempty"`
	MD5System  string               `json:"ms,omitempty"`
	VisibleAt  int64                `json:"v,omitempty"` // unix ms, delayed messages
	DeadLetter string               `json:"dl,omitempty"`
}

// headerVisibleAt carries a delayed message's due time, unix ms.
const headerVisibleAt = "Stratus-Visible-At"

// validBody reports whether s holds only the characters SQS allows.
func validBody(s string) bool {
	for _, r := range s {
		switch {
		case r == 0x9, r == 0xA, r == 0xD:
		case r >= 0x20 && r <= 0xD7FF:
		case r >= 0xE000 && r <= 0xFFFD:
		case r >= 0x10000 && r <= 0x10FFFF:
		default:
			return false
		}
	}
	return utf8.ValidString(s)
}

// attrsSize is what attributes add to a message's size, as SQS counts it.
func attrsSize(attrs map[string]Attribute) int {
	n := 0
	for name, a := range attrs {
		n += len(name) + len(a.DataType)
		if a.StringValue != nil {
			n += len(*a.StringValue)
		}
		n += len(a.BinaryValue)
	}
	return n
}

func validAttributes(attrs map[string]Attribute) error {
	if len(attrs) > MaxAttributes {
		return function.Errorf(ErrInvalidParameter, "Number of message attributes [%d] exceeds the allowed maximum [%d].", len(attrs), MaxAttributes)
	}
	for name, a := range attrs {
		if name == "" || len(name) > 256 || strings.HasPrefix(strings.ToLower(name), "aws.") || strings.HasPrefix(strings.ToLower(name), "amazon.") {
			return function.Errorf(ErrInvalidParameter, "Message attribute name '%s' is invalid.", name)
		}
		base, _, _ := strings.Cut(a.DataType, ".")
		switch base {
		case "String", "Number":
			if a.StringValue == nil {
				return function.Errorf(ErrInvalidParameter, "Message (user) attribute '%s' must contain a non-empty value of type '%s'.", name, base)
			}
			if base == "Number" {
				if _, err := strconv.ParseFloat(*a.StringValue, 64); err != nil {
					return function.Errorf(ErrInvalidParameter, "Could not cast message attribute '%s' value to number.", name)
				}
			}
			if !validBody(*a.StringValue) {
				return function.Errorf(ErrInvalidContents, "Message (user) attribute '%s' contains invalid characters.", name)
			}
		case "Binary":
			if a.BinaryValue == nil {
				return function.Errorf(ErrInvalidParameter, "Message (user) attribute '%s' must contain a non-empty value of type 'Binary'.", name)
			}
		default:
			return function.Errorf(ErrInvalidParameter, "The type of message (user) attribute '%s' is invalid. You must use only the following supported type prefixes: Binary, Number, String.", name)
		}
	}
	return nil
}

// AttributesMD5 is SQS's digest of message attributes: names sorted, each
// name, type and value length-prefixed, the value after a transport byte.
func AttributesMD5(attrs map[string]Attribute) string {
	if len(attrs) == 0 {
		return ""
	}
	names := make([]string, 0, len(attrs))
	for n := range attrs {
		names = append(names, n)
	}
	sort.Strings(names)
	h := md5.New()
	put := func(b []byte) {
		var l [4]byte
		binary.BigEndian.PutUint32(l[:], uint32(len(b)))
		h.Write(l[:])
		h.Write(b)
	}
	for _, n := range names {
		a := attrs[n]
		put([]byte(n))
		put([]byte(a.DataType))
		if a.StringValue != nil {
			h.Write([]byte{1})
			put([]byte(*a.StringValue))
		} else {
			h.Write([]byte{2})
			put(a.BinaryValue)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

func bodyMD5(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// prepare validates an entry and builds what is stored.
func (m *Manager) prepare(q *Queue, e *SendEntry, now time.Time) (*stored, error) {
	if e.Body == "" {
		return nil, function.Errorf(ErrInvalidParameter, "The request must contain the parameter MessageBody.")
	}
	if !validBody(e.Body) {
		return nil, function.Errorf(ErrInvalidContents, "Invalid binary character in the message body. Only characters #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF are allowed.")
	}
	if err := validAttributes(e.Attributes); err != nil {
		return nil, err
	}
	if size := len(e.Body) + attrsSize(e.Attributes); size > q.Attrs.MaximumMessageSize {
		return nil, function.Errorf(ErrInvalidParameter, "One or more parameters are invalid. Reason: Message must be shorter than %d bytes.", q.Attrs.MaximumMessageSize)
	}
	delay := q.Attrs.DelaySeconds
	if e.DelaySeconds != nil {
		delay = *e.DelaySeconds
		if delay < 0 || delay > MaxDelaySeconds {
			return nil, function.Errorf(ErrInvalidParameter, "Value %d for parameter DelaySeconds is invalid. Reason: must be between 0 and 900, if provided.", delay)
		}
	}
	s := &stored{
		ID:      uuid.NewString(),
		Body:    e.Body,
		Attrs:   e.Attributes,
		System:  e.System,
		Sent:    now.UnixMilli(),
		MD5Body: bodyMD5(e.Body),
	}
	s.MD5Attrs = AttributesMD5(e.Attributes)
	s.MD5System = AttributesMD5(e.System)
	if delay > 0 {
		s.VisibleAt = now.Add(time.Duration(delay) * time.Second).UnixMilli()
	}
	return s, nil
}

// ackTimeout bounds the wait for the store to confirm a send.
const ackTimeout = 10 * time.Second

// errNoAck: the store did not confirm in time; the message may or may not
// have been stored (a retry may then duplicate it, as SQS allows).
var errNoAck = errors.New("the store did not confirm the message in time")

// Send stores messages; each result says whether its entry was stored.
// It returns once the store has every stored message on disk.
func (m *Manager) Send(ctx context.Context, name string, entries []SendEntry) ([]SendResult, error) {
	q, err := m.Get(name)
	if err != nil {
		return nil, err
	}
	if err := m.st.Writable(); err != nil {
		return nil, err
	}
	now := m.now()
	results := make([]SendResult, len(entries))
	futures := make([]jetstream.PubAckFuture, len(entries))
	for i := range entries {
		e := &entries[i]
		results[i].ID = e.ID
		s, err := m.prepare(q, e, now)
		if err != nil {
			results[i].Err = err
			continue
		}
		results[i].MessageID, results[i].MD5OfBody = s.ID, s.MD5Body
		results[i].MD5OfAttributes, results[i].MD5OfSystemAttrs = s.MD5Attrs, s.MD5System
		// As SQS does with X-Ray: the sender's trace header (which AWS SDKs
		// inside functions send) becomes the message's AWSTraceHeader, so a
		// function it triggers continues the trace and its loop count. The
		// sender's checksum stays that of what it sent.
		if tr := recursion.Trace(ctx); tr != "" && s.System["AWSTraceHeader"].StringValue == nil {
			sys := make(map[string]Attribute, len(s.System)+1)
			maps.Copy(sys, s.System)
			sys["AWSTraceHeader"] = Attribute{DataType: "String", StringValue: &tr}
			s.System = sys
		}
		msg, err := m.storedMsg(name, s)
		if err != nil {
			results[i].Err = err
			continue
		}
		if futures[i], err = m.st.JS.PublishMsgAsync(msg); err != nil {
			results[i].Err = fmt.Errorf("store message: %w", err)
		}
	}
	sent := 0
	// A store that stopped answering (its disk failed under it) must not
	// hold the caller for minutes.
	wait := time.NewTimer(ackTimeout)
	defer wait.Stop()
	failed := m.st.WriteFailures()
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case <-f.Ok():
			sent++
		case err := <-f.Err():
			results[i].Err = fmt.Errorf("store message: %w", err)
		case <-ctx.Done():
			results[i].Err = fmt.Errorf("store message: %w", ctx.Err())
		case <-failed:
			results[i].Err = fmt.Errorf("store message: %w", m.st.Writable())
		case <-wait.C:
			results[i].Err = fmt.Errorf("store message: %w", m.st.Failed(errNoAck))
			wait.Reset(0)
		}
	}
	m.metrics.sent.WithLabelValues(name).Add(float64(sent))
	return results, nil
}

// storedMsg is the NATS message for s: to the delay stream while s is not
// yet due, else to the queue.
func (m *Manager) storedMsg(queue string, s *stored) (*nats.Msg, error) {
	data, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encode message: %w", err)
	}
	subject := store.QueueSubject + queue
	if s.VisibleAt > 0 && s.VisibleAt > m.now().UnixMilli() {
		subject = store.DelaySubject + queue
	}
	msg := nats.NewMsg(subject)
	msg.Data = data
	if subject != store.QueueSubject+queue {
		msg.Header.Set(headerVisibleAt, strconv.FormatInt(s.VisibleAt, 10))
	}
	return msg, nil
}
