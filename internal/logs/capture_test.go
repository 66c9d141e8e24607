package logs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

type memPublisher struct {
	mu       sync.Mutex
	msgs     map[string][]string
	fail     error         // returned by every publish while set
	block    chan struct{} // publishes wait for it to close while set
	attempts int
}

// PublishMsg keeps the messages of the stored lines, by function.
func (m *memPublisher) PublishMsg(_ context.Context, msg *nats.Msg, _ ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	data := msg.Data
	m.mu.Lock()
	block := m.block
	m.mu.Unlock()
	if block != nil {
		<-block
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.attempts++
	if m.fail != nil {
		return nil, m.fail
	}
	if len(data) > 1<<20 { // NATS's default payload limit
		return nil, nats.ErrMaxPayload
	}
	var b strings.Builder
	for _, ev := range Decode(msg.Subject, msg.Header, data, time.Now(), 0) {
		b.WriteString(ev.Message + "\n")
	}
	fn := strings.TrimPrefix(msg.Subject, SubjectPrefix)
	fn = fn[:strings.LastIndexByte(fn, '.')]
	m.msgs[SubjectPrefix+fn] = append(m.msgs[SubjectPrefix+fn], b.String())
	return &jetstream.PubAck{}, nil
}

func (m *memPublisher) set(f func(m *memPublisher)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f(m)
}

func st(fn string) Stream {
	return Stream{Function: fn, Instance: "0123abcd", Name: "2026/12/02/[$LATEST]0123abcd"}
}

func newTestSink() (*Sink, *memPublisher) {
	p := &memPublisher{msgs: map[string][]string{}}
	return NewSink(p, slog.Default()), p
}

func TestSinkBatchesPerFunction(t *testing.T) {
	s, p := newTestSink()
	s.Write(st("a"), time.Now(), "", []byte("1"))
	s.Write(st("b"), time.Now(), "", []byte("2"))
	s.Write(st("a"), time.Now(), "", []byte("3"))
	s.Close()
	if got := strings.Join(p.msgs["stratus.logs.a"], ""); got != "1\n3\n" {
		t.Errorf("a: %q", got)
	}
	if got := strings.Join(p.msgs["stratus.logs.b"], ""); got != "2\n" {
		t.Errorf("b: %q", got)
	}
}

func TestSinkSplitsLargeBatches(t *testing.T) {
	s, p := newTestSink()
	var want strings.Builder
	for i := range 3000 {
		line := fmt.Sprintf("%04d %s", i, strings.Repeat("x", 995))
		s.Write(st("big"), time.Now(), "", []byte(line))
		want.WriteString(line + "\n")
	}
	s.Close()
	msgs := p.msgs["stratus.logs.big"]
	for _, m := range msgs {
		if len(m) > maxPublish || !strings.HasSuffix(m, "\n") {
			t.Fatalf("stored message of %d bytes, ending %q", len(m), m[len(m)-5:])
		}
	}
	if got := strings.Join(msgs, ""); got != want.String() {
		t.Errorf("stored %d bytes in %d messages, want %d bytes", len(got), len(msgs), want.Len())
	}
}

func TestSinkWaitsForTheStore(t *testing.T) {
	s, p := newTestSink()
	p.set(func(m *memPublisher) { m.fail = nats.ErrReconnectBufExceeded })
	s.Write(st("f"), time.Now(), "", []byte("1"))
	waitUntil(t, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.attempts > 0
	})
	s.Write(st("f"), time.Now(), "", []byte("2"))
	p.set(func(m *memPublisher) { m.fail = nil })
	waitUntil(t, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return strings.Join(p.msgs["stratus.logs.f"], "") == "1\n2\n"
	})
	s.Close()
}

func TestSinkDropsWhatTheStoreRefuses(t *testing.T) {
	s, p := newTestSink()
	p.set(func(m *memPublisher) { m.fail = errors.New("refused") })
	s.Write(st("f"), time.Now(), "", []byte("1"))
	s.Write(st("f"), time.Now(), "", []byte("2"))
	s.Close()
	if s.Dropped.Load() != 2 || len(p.msgs) != 0 {
		t.Errorf("dropped %d, stored %v", s.Dropped.Load(), p.msgs)
	}
}

func TestSinkMarksDroppedLines(t *testing.T) {
	s, p := newTestSink()
	release := make(chan struct{})
	p.set(func(m *memPublisher) { m.block = release }) // a slow store
	// Twice what one function may hold, queued and in flight together.
	line := []byte(strings.Repeat("x", 1023))
	for range 2*maxPendingPerFn/1024 + 10 {
		s.Write(st("flood"), time.Now(), "", line)
	}
	s.Write(st("quiet"), time.Now(), "", []byte("still heard"))
	close(release)
	waitUntil(t, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.msgs["stratus.logs.quiet"]) > 0
	})
	s.Write(st("flood"), time.Now(), "", []byte("after"))
	s.Close()
	dropped := s.Dropped.Load()
	got := strings.Join(p.msgs["stratus.logs.flood"], "")
	// The mark stands where lines went missing (one per gap, the flusher
	// decides where the gaps fall) and counts them.
	marked := 0
	for _, line := range strings.Split(got, "\n") {
		var n int
		if _, err := fmt.Sscanf(line, "[stratus] %d log lines dropped: the function wrote faster than they could be stored", &n); err == nil {
			marked += n
		}
	}
	if dropped < 10 || int64(marked) != dropped || !strings.HasSuffix(got, "\nafter\n") {
		t.Errorf("dropped %d, marked %d; flood log ends %q", dropped, marked, got[max(0, len(got)-120):])
	}
	if q := strings.Join(p.msgs["stratus.logs.quiet"], ""); q != "still heard\n" {
		t.Errorf("quiet: %q", q)
	}
}

func TestChunkEnd(t *testing.T) {
	for _, tc := range []struct {
		data string
		max  int
		want int
	}{
		{"ab\n", 10, 3},
		{"ab\ncd\nef\n", 7, 6},
		{"ab\ncd\nef\n", 6, 6},
		{"abcdef\n", 4, 4}, // no whole line fits
		{"", 4, 0},
	} {
		if got := chunkEnd([]byte(tc.data), tc.max); got != tc.want {
			t.Errorf("chunkEnd(%q, %d) = %d, want %d", tc.data, tc.max, got, tc.want)
		}
	}
}

func waitUntil(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCaptureRoutesLines(t *testing.T) {
	s, _ := newTestSink()
	defer s.Close()
	c, err := NewCapture(st("fn"), Format{}, s)
	if err != nil {
		t.Fatal(err)
	}
	w := c.Writer()
	c.Begin("req-1", "$LATEST")
	fmt.Fprint(w, "one\ntw")
	fmt.Fprint(w, "o\nthree-without-newline")
	c.Settle()
	c.Platform("END")
	if got := string(c.Tail("")); got != "START RequestId: req-1 Version: $LATEST\none\ntwo\nthree-without-newline\nEND\n" {
		t.Errorf("tail %q", got)
	}
	c.Begin("req-2", "$LATEST")
	fmt.Fprint(w, strings.Repeat("x", 5000)+"\n")
	c.Settle()
	if got := c.Tail(""); len(got) != tailBytes {
		t.Errorf("tail of %d bytes, want %d", len(got), tailBytes)
	}
	c.Started()
	c.Wait()
	c.Close()
}
