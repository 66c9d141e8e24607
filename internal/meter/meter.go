// Package meter turns invocation records into usage: billed duration,
// GB-seconds and cost. Records are stored durably in batches, off the
// invocation path, and aggregated when a report is asked for.
package meter

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stratus-faas/stratus/internal/batcher"
	"github.com/stratus-faas/stratus/internal/outcome"
	"github.com/stratus-faas/stratus/internal/store"
)

// Record is one invocation's usage.
type Record struct {
	Function   string    `json:"fn"`
	Version    string    `json:"v"`
	RequestID  string    `json:"id"`
	Start      time.Time `json:"t"`
	DurationMs float64   `json:"d"`
	BilledMs   int64     `json:"b"`
	MemoryMB   int       `json:"m"`
	MaxMemMB   int       `json:"mm,omitempty"`
	InitMs     float64   `json:"i,omitempty"`
	Cold       bool      `json:"c,omitempty"`
	// Streamed is the bytes of a streamed response.
	Streamed int64 `json:"sb,omitempty"`
	// Shared: the invocation ran in a multi-concurrency environment, whose
	// compute is billed by the environment's lifetime (outcome.Environment
	// records), so the invocation's own duration bills none.
	Shared bool `json:"sh,omitempty"`
	// Outcome.Provisioned records provisioned instances kept ready:
	// BilledMs is then instance-milliseconds, billed at the provisioned
	// rate. Outcome.Environment records multi-concurrency environments
	// kept: instance-milliseconds at the on-demand rate.
	Outcome outcome.Outcome `json:"o"`
}

// BilledMs rounds a duration up to whole milliseconds, as Lambda bills.
func BilledMs(d time.Duration) int64 {
	return int64(math.Ceil(float64(d) / float64(time.Millisecond)))
}

// GBSeconds is the compute the record is billed for.
func (r Record) GBSeconds() float64 {
	if r.Shared {
		return 0
	}
	return float64(r.MemoryMB) / 1024 * float64(r.BilledMs) / 1000
}

// Prices is the price table. Defaults are Lambda's public x86 on-demand prices (us-east-1).
type Prices struct {
	PerMillionRequests     float64 `json:"perMillionRequests"`
	PerGBSecond            float64 `json:"perGBSecond"`
	PerProvisionedGBSecond float64 `json:"perProvisionedGBSecond"`
}

// DefaultPrices are Lambda's public x86 prices (us-east-1).
var DefaultPrices = Prices{PerMillionRequests: 0.20, PerGBSecond: 0.0000166667, PerProvisionedGBSecond: 0.0000041667}

// Writer batches records into the usage stream: one publish (one fsync)
// carries every record of a short window.
type Writer struct {
	js  jetstream.JetStream
	log *slog.Logger

	mu      sync.Mutex
	pending []Record
	loop    *batcher.Loop
}

// NewWriter starts the flusher; Close flushes and stops it.
func NewWriter(js jetstream.JetStream, log *slog.Logger) *Writer {
	w := &Writer{js: js, log: log}
	w.loop = batcher.Start(20*time.Millisecond, retryDelay, w.flush, func() {
		w.log.Error("usage records lost at shutdown: the store is unreachable")
	})
	return w
}

// Add queues a record.
func (w *Writer) Add(r Record) {
	w.mu.Lock()
	w.pending = append(w.pending, r)
	w.mu.Unlock()
	w.loop.Wake()
}

const (
	retryDelay    = time.Second
	maxPending    = 1 << 20 // records held while the store is unreachable
	maxPerPublish = 2000    // records of one stored message, about 300 KB
)

// flush stores what is queued; it reports whether all of it was stored.
// What could not be is queued again.
func (w *Writer) flush() bool {
	w.mu.Lock()
	batch := w.pending
	w.pending = nil
	w.mu.Unlock()
	if len(batch) == 0 {
		return true
	}
	byFn := map[string][]Record{}
	for _, r := range batch {
		byFn[r.Function] = append(byFn[r.Function], r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var failed []Record
	for fn, recs := range byFn {
		for len(recs) > 0 {
			// Chunks stay well under NATS's 1 MB payload limit.
			chunk := recs[:min(len(recs), maxPerPublish)]
			recs = recs[len(chunk):]
			data, err := json.Marshal(chunk)
			if err != nil {
				continue
			}
			_, err = w.js.Publish(ctx, store.UsageSubject+fn, data)
			if err != nil && store.Unavailable(err) {
				w.log.Warn("could not store usage records yet", "function", fn, "records", len(chunk)+len(recs), "err", err)
				failed = append(failed, chunk...)
				failed = append(failed, recs...)
				break
			}
			if err != nil {
				w.log.Error("usage records dropped", "function", fn, "records", len(chunk), "err", err)
			}
		}
	}
	if len(failed) == 0 {
		return true
	}
	w.mu.Lock()
	w.pending = append(failed, w.pending...)
	if n := len(w.pending) - maxPending; n > 0 {
		w.log.Error("usage records dropped: the store has been unreachable too long", "records", n)
		w.pending = w.pending[n:]
	}
	w.mu.Unlock()
	return false
}

// Close flushes queued records and stops.
func (w *Writer) Close() { w.loop.Close() }

// Totals is one function's usage over a period.
type Totals struct {
	Function   string `json:"function"`
	Requests   int64  `json:"requests"`
	Errors     int64  `json:"errors"`
	Throttles  int64  `json:"throttles"`
	ColdStarts int64  `json:"coldStarts"`
	// StreamedBytes are the bytes of streamed responses.
	StreamedBytes int64   `json:"streamedBytes,omitempty"`
	BilledMs      int64   `json:"billedMs"`
	GBSeconds     float64 `json:"gbSeconds"`
	InitMsTotal   float64 `json:"initMsTotal"`
	// ProvisionedGBSeconds is compute kept ready by provisioned concurrency.
	ProvisionedGBSeconds float64 `json:"provisionedGBSeconds"`
	// EnvironmentGBSeconds is the compute of multi-concurrency execution
	// environments, for as long as each lived.
	EnvironmentGBSeconds float64 `json:"environmentGBSeconds,omitempty"`
	Cost                 float64 `json:"cost"`
}

// Report aggregates records into per-function totals.
type Report struct {
	Since     time.Time `json:"since"`
	Prices    Prices    `json:"prices"`
	Functions []Totals  `json:"functions"`
	Total     Totals    `json:"total"`
}

// Aggregate reads the usage stream from since and totals it.
func Aggregate(ctx context.Context, st *store.Store, since time.Time, fn string, prices Prices) (*Report, error) {
	subject := store.UsageSubject + ">"
	if fn != "" {
		subject = store.UsageSubject + fn
	}
	acc := map[string]*Totals{}
	err := st.ReadSubject(ctx, store.UsageStream, subject, since, false, func(m jetstream.Msg) error {
		var recs []Record
		if err := json.Unmarshal(m.Data(), &recs); err != nil {
			return nil // an unreadable batch is skipped, not fatal
		}
		for _, r := range recs {
			if r.Function == "" || r.Start.Before(since) {
				continue // not an invocation's (a bucket's, under s3.)
			}
			t := acc[r.Function]
			if t == nil {
				t = &Totals{Function: r.Function}
				acc[r.Function] = t
			}
			t.add(r)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	rep := &Report{Since: since, Prices: prices, Total: Totals{Function: "TOTAL"}}
	for _, t := range acc {
		t.Cost = prices.cost(t)
		rep.Functions = append(rep.Functions, *t)
		rep.Total.Requests += t.Requests
		rep.Total.Errors += t.Errors
		rep.Total.Throttles += t.Throttles
		rep.Total.ColdStarts += t.ColdStarts
		rep.Total.StreamedBytes += t.StreamedBytes
		rep.Total.BilledMs += t.BilledMs
		rep.Total.GBSeconds += t.GBSeconds
		rep.Total.InitMsTotal += t.InitMsTotal
		rep.Total.ProvisionedGBSeconds += t.ProvisionedGBSeconds
		rep.Total.EnvironmentGBSeconds += t.EnvironmentGBSeconds
		rep.Total.Cost += t.Cost
	}
	sort.Slice(rep.Functions, func(i, j int) bool { return rep.Functions[i].Function < rep.Functions[j].Function })
	for i := range rep.Functions {
		rep.Functions[i].round()
	}
	rep.Total.round()
	return rep, nil
}

// round keeps what a bill can tell apart and drops the noise of summing
// floats (0.004750000000000002): GB-seconds to the micro, cost to the
// ten-billionth of a unit, init time to the microsecond.
func (t *Totals) round() {
	t.GBSeconds = roundTo(t.GBSeconds, 6)
	t.ProvisionedGBSeconds = roundTo(t.ProvisionedGBSeconds, 6)
	t.EnvironmentGBSeconds = roundTo(t.EnvironmentGBSeconds, 6)
	t.Cost = roundTo(t.Cost, 10)
	t.InitMsTotal = roundTo(t.InitMsTotal, 3)
}

func roundTo(x float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(x*p) / p
}

func (t *Totals) add(r Record) {
	switch r.Outcome {
	case outcome.Throttle:
		t.Throttles++
		return // a throttled request is neither run nor billed
	case outcome.Provisioned:
		t.ProvisionedGBSeconds += r.GBSeconds()
		return
	case outcome.Environment:
		t.EnvironmentGBSeconds += r.GBSeconds()
		return
	}
	if r.Outcome.Failed() {
		t.Errors++
	}
	t.Requests++
	if r.Cold {
		t.ColdStarts++
		t.InitMsTotal += r.InitMs
	}
	t.BilledMs += r.BilledMs
	t.GBSeconds += r.GBSeconds()
	t.StreamedBytes += r.Streamed
}

func (p Prices) cost(t *Totals) float64 {
	return float64(t.Requests)/1e6*p.PerMillionRequests + t.GBSeconds*p.PerGBSecond + t.ProvisionedGBSeconds*p.PerProvisionedGBSecond + t.EnvironmentGBSeconds*p.PerGBSecond
}

// Recent is a function's latest invocations (at most n, newest last)
// among those that started after since.
func Recent(ctx context.Context, st *store.Store, fn string, since time.Time, n int) ([]Record, error) {
	var out []Record
	err := st.ReadSubject(ctx, store.UsageStream, store.UsageSubject+fn, since, false, func(m jetstream.Msg) error {
		var recs []Record
		if json.Unmarshal(m.Data(), &recs) != nil {
			return nil
		}
		for _, r := range recs {
			if r.Outcome == outcome.Provisioned || r.Outcome == outcome.Environment || r.Start.Before(since) {
				continue
			}
			out = append(out, r)
			if len(out) > n {
				out = out[1:]
			}
		}
		return nil
	})
	return out, err
}
