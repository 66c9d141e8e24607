package logs

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

type memPublisher struct {
	mu   sync.Mutex
	msgs map[string][]string
}

func (m *memPublisher) Publish(_ context.Context, subject string, data []byte, _ ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.msgs[subject] = append(m.msgs[subject], string(data))
	return &jetstream.PubAck{}, nil
}

func newTestSink() (*Sink, *memPublisher) {
	p := &memPublisher{msgs: map[string][]string{}}
	return NewSink(p, slog.Default()), p
}

func TestSinkBatchesPerFunction(t *testing.T) {
	s, p := newTestSink()
	s.Write("a", []byte("1"))
	s.Write("b", []byte("2"))
	s.Write("a", []byte("3"))
	s.Close()
	if got := strings.Join(p.msgs["stratus.logs.a"], ""); got != "1\n3\n" {
		t.Errorf("a: %q", got)
	}
	if got := strings.Join(p.msgs["stratus.logs.b"], ""); got != "2\n" {
		t.Errorf("b: %q", got)
	}
}

func TestCaptureRoutesLines(t *testing.T) {
	s, _ := newTestSink()
	defer s.Close()
	c, err := NewCapture("fn", s)
	if err != nil {
		t.Fatal(err)
	}
	w := c.Writer()
	c.Begin()
	fmt.Fprint(w, "one\ntw")
	fmt.Fprint(w, "o\nthree-without-newline")
	c.Settle()
	c.Platform("END")
	if got := string(c.Tail()); got != "one\ntwo\nthree-without-newline\nEND\n" {
		t.Errorf("tail %q", got)
	}
	c.Begin()
	fmt.Fprint(w, strings.Repeat("x", 5000)+"\n")
	c.Settle()
	if got := c.Tail(); len(got) != tailBytes {
		t.Errorf("tail of %d bytes, want %d", len(got), tailBytes)
	}
	c.Started()
	c.Wait()
	c.Close()
}
