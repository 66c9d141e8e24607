package meter

import (
	"context"
	"encoding/json"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stratus-faas/stratus/internal/store"
)

// S3's public prices for S3 Standard in us-east-1.
var DefaultS3Prices = S3Prices{PerGBMonth: 0.023, PerThousandTier1: 0.005, PerThousandTier2: 0.0004}

// S3Prices price storage and requests: tier 1 are PUT, COPY, POST and
// LIST requests, tier 2 GET, HEAD and the rest; DELETE is free.
type S3Prices struct {
	PerGBMonth       float64 `json:"perGBMonth"`
	PerThousandTier1 float64 `json:"perThousandTier1"`
	PerThousandTier2 float64 `json:"perThousandTier2"`
}

// hoursPerMonth is the month S3's GB-month is computed over.
const hoursPerMonth = 730

// S3Record is a bucket's usage over one interval.
type S3Record struct {
	Bucket string    `json:"bkt"`
	Start  time.Time `json:"t"`
	Tier1  int64     `json:"r1,omitempty"`
	Tier2  int64     `json:"r2,omitempty"`
	// GBHours is the bytes stored, integrated over the interval.
	GBHours float64 `json:"gbh,omitempty"`
}

// S3Meter counts each bucket's requests and stored bytes and records
// them once a minute, durably, in the usage stream.
type S3Meter struct {
	js    jetstream.JetStream
	log   *slog.Logger
	bytes func() map[string]int64 // bytes stored per bucket now

	mu     sync.Mutex
	counts map[string]*S3Record
	last   time.Time

	stop chan struct{}
	done chan struct{}
}

const s3Interval = time.Minute

// NewS3Meter starts the meter; Close records what is counted and stops.
func NewS3Meter(js jetstream.JetStream, log *slog.Logger, bytes func() map[string]int64) *S3Meter {
	m := &S3Meter{js: js, log: log, bytes: bytes, counts: map[string]*S3Record{}, last: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	go m.run()
	return m
}

// Request counts one request on bucket; tier 1 or 2, 0 for a free one.
func (m *S3Meter) Request(bucket string, tier int) {
	if bucket == "" || tier == 0 {
		return
	}
	m.mu.Lock()
	r := m.counts[bucket]
	if r == nil {
		r = &S3Record{Bucket: bucket}
		m.counts[bucket] = r
	}
	if tier == 1 {
		r.Tier1++
	} else {
		r.Tier2++
	}
	m.mu.Unlock()
}

func (m *S3Meter) run() {
	defer close(m.done)
	t := time.NewTicker(s3Interval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			m.flush(time.Now())
			return
		case now := <-t.C:
			m.flush(now)
		}
	}
}

// flush records the interval ending now: its requests, and the bytes
// stored at its end held for its length.
func (m *S3Meter) flush(now time.Time) {
	m.mu.Lock()
	counts, start := m.counts, m.last
	m.counts, m.last = map[string]*S3Record{}, now
	m.mu.Unlock()
	hours := now.Sub(start).Hours()
	for b, n := range m.bytes() {
		r := counts[b]
		if r == nil {
			r = &S3Record{Bucket: b}
			counts[b] = r
		}
		r.GBHours = float64(n) / (1 << 30) * hours
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for b, r := range counts {
		if r.Tier1 == 0 && r.Tier2 == 0 && r.GBHours == 0 {
			continue
		}
		r.Start = start
		data, _ := json.Marshal([]S3Record{*r})
		if _, err := m.js.Publish(ctx, store.UsageSubject+"s3."+b, data); err != nil {
			m.log.Warn("S3 usage of an interval not recorded", "bucket", b, "err", err)
		}
	}
}

// Close records the last interval and stops.
func (m *S3Meter) Close() {
	close(m.stop)
	<-m.done
}

// S3Totals is one bucket's usage over a period.
type S3Totals struct {
	Bucket   string  `json:"bucket"`
	Tier1    int64   `json:"tier1Requests"`
	Tier2    int64   `json:"tier2Requests"`
	GBMonths float64 `json:"gbMonths"`
	Cost     float64 `json:"cost"`
}

// AggregateS3 totals the buckets' records from since.
func AggregateS3(ctx context.Context, st *store.Store, since time.Time, prices S3Prices) ([]S3Totals, error) {
	acc := map[string]*S3Totals{}
	err := st.ReadSubject(ctx, store.UsageStream, store.UsageSubject+"s3.>", since, false, func(msg jetstream.Msg) error {
		var recs []S3Record
		if json.Unmarshal(msg.Data(), &recs) != nil {
			return nil
		}
		for _, r := range recs {
			if r.Bucket == "" || r.Start.Before(since) {
				continue
			}
			t := acc[r.Bucket]
			if t == nil {
				t = &S3Totals{Bucket: r.Bucket}
				acc[r.Bucket] = t
			}
			t.Tier1 += r.Tier1
			t.Tier2 += r.Tier2
			t.GBMonths += r.GBHours / hoursPerMonth
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]S3Totals, 0, len(acc))
	for _, t := range acc {
		t.Cost = roundTo(t.GBMonths*prices.PerGBMonth+float64(t.Tier1)/1000*prices.PerThousandTier1+float64(t.Tier2)/1000*prices.PerThousandTier2, 10)
		t.GBMonths = roundTo(t.GBMonths, 9)
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Bucket < out[j].Bucket })
	return out, nil
}
