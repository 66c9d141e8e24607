// Package logs captures instance output, frames it with Lambda's START, END
// and REPORT lines, keeps the tail of each invocation's log, and stores all
// of it in the logs stream, batched and off the invocation path.
package logs

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stratus-faas/stratus/internal/batcher"
	"github.com/stratus-faas/stratus/internal/store"
)

const (
	// Each instance has a stream of its own, so a flush stores one
	// message (one fsync) per busy instance: at 20 ms, 32 busy instances
	// cost the store 1,600 fsyncs a second, a tenth of the server's CPU
	// under load. A fifth of a second is still far quicker than
	// CloudWatch Logs shows lines.
	flushDelay = 200 * time.Millisecond
	// Bytes held before lines are dropped: in all, and of one function, so
	// that one flooding function neither grows the server nor silences the
	// others. Any sane log rate fits in them many times over.
	maxPending      = 32 << 20
	maxPendingPerFn = 4 << 20
)

// Publisher is the part of JetStream the sink uses.
type Publisher interface {
	PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

// Sink batches log lines per log stream and publishes them to the store.
type Sink struct {
	js  Publisher
	log *slog.Logger

	mu      sync.Mutex
	pending map[string]*pending // by subject
	size    int
	dropped map[string]int // lines dropped since the stream's last stored one
	loop    *batcher.Loop

	Dropped atomic.Int64
}

// pending is what waits to be stored of one stream.
type pending struct {
	st  Stream
	buf []byte
}

// NewSink starts the flusher; Close stops it after a final flush.
func NewSink(js Publisher, log *slog.Logger) *Sink {
	s := &Sink{
		js:      js,
		log:     log,
		pending: make(map[string]*pending),
		dropped: make(map[string]int),
	}
	s.loop = batcher.Start(flushDelay, retryDelay, s.flush, func() {
		s.log.Error("log lines lost at shutdown: the store is unreachable")
	})
	return s
}

// Write queues one line (without its newline) of a stream, written at t
// during the invocation reqID ("" for none).
func (s *Sink) Write(st Stream, t time.Time, reqID string, line []byte) {
	key := st.subject()
	s.mu.Lock()
	p := s.pending[key]
	if s.size+len(line) > maxPending || (p != nil && len(p.buf)+len(line) > maxPendingPerFn) {
		s.dropped[key]++
		s.mu.Unlock()
		s.Dropped.Add(1)
		return
	}
	if p == nil {
		p = &pending{st: st}
		s.pending[key] = p
	}
	before := len(p.buf)
	if n := s.dropped[key]; n > 0 {
		// The reader of the log learns that lines are missing here.
		p.buf = appendEvent(p.buf, t, reqID, fmt.Appendf(nil, "[stratus] %d log lines dropped: the function wrote faster than they could be stored", n))
		delete(s.dropped, key)
	}
	p.buf = appendEvent(p.buf, t, reqID, line)
	s.size += len(p.buf) - before
	s.mu.Unlock()
	s.loop.Wake()
}

const retryDelay = time.Second

// flush stores what is queued; it reports whether all of it was stored.
// Lines the store could not be reached for are queued again, ahead of
// newer ones; lines it refused are dropped (and said so).
func (s *Sink) flush() bool {
	s.mu.Lock()
	batch := s.pending
	s.pending = make(map[string]*pending)
	s.size = 0
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	failed := map[string]*pending{}
	kept := 0
	for key, p := range batch {
		data := p.buf
		for len(data) > 0 {
			n := chunkEnd(data, maxPublish)
			_, err := s.js.PublishMsg(ctx, &nats.Msg{Subject: key, Header: streamHeader(p.st), Data: data[:n]})
			if err != nil && store.Unavailable(err) {
				s.log.Warn("could not store log lines yet", "function", p.st.Function, "err", err)
				failed[key] = &pending{st: p.st, buf: data}
				kept += len(data)
				break
			}
			if err != nil {
				s.Dropped.Add(int64(bytes.Count(data[:n], []byte{'\n'})))
				s.log.Error("log lines dropped", "function", p.st.Function, "bytes", n, "err", err)
			}
			data = data[n:]
		}
	}
	if len(failed) == 0 {
		return true
	}
	s.mu.Lock()
	for key, p := range s.pending {
		if old := failed[key]; old != nil {
			old.buf = append(old.buf, p.buf...)
		} else {
			failed[key] = p
		}
	}
	s.pending = failed
	s.size += kept
	s.mu.Unlock()
	return false
}

// maxPublish bounds one stored message of log lines, well under NATS's
// default 1 MB payload limit and above the longest line (maxLine).
const maxPublish = 512 << 10

// chunkEnd is where the first chunk of data of at most max bytes ends: after
// its last whole line, or at max if no line ends before.
func chunkEnd(data []byte, max int) int {
	if len(data) <= max {
		return len(data)
	}
	if i := bytes.LastIndexByte(data[:max], '\n'); i >= 0 {
		return i + 1
	}
	return max
}

// Close flushes what is queued and stops.
func (s *Sink) Close() { s.loop.Close() }
