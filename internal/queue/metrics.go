package queue

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Metrics count queue traffic; gauges of depth are read on scrape.
type Metrics struct {
	sent, received, deleted, redelivered, deadLettered, stale *prometheus.CounterVec
}

// NewMetrics registers the counters with reg (nil: not exported).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	c := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"queue"})
	}
	m := &Metrics{
		sent:         c("stratus_queue_messages_sent_total", "Messages stored in a queue."),
		received:     c("stratus_queue_messages_received_total", "Deliveries of messages to receivers."),
		deleted:      c("stratus_queue_messages_deleted_total", "Messages deleted after processing."),
		redelivered:  c("stratus_queue_messages_redelivered_total", "Deliveries of a message received before (retries)."),
		deadLettered: c("stratus_queue_messages_dead_lettered_total", "Messages moved to a dead-letter queue."),
		stale:        c("stratus_queue_stale_deletes_total", "Deletes with the handle of an older delivery, ignored."),
	}
	if reg != nil {
		reg.MustRegister(m.sent, m.received, m.deleted, m.redelivered, m.deadLettered, m.stale)
	}
	return m
}

// Counts are this node's counters for a queue.
func (m *Metrics) Counts(queue string) map[string]float64 {
	out := map[string]float64{}
	for name, c := range map[string]*prometheus.CounterVec{
		"sent": m.sent, "received": m.received, "deleted": m.deleted,
		"redelivered": m.redelivered, "deadLettered": m.deadLettered, "staleDeletes": m.stale,
	} {
		var d dto.Metric
		if c.WithLabelValues(queue).Write(&d) == nil {
			out[name] = d.GetCounter().GetValue()
		}
	}
	return out
}

// Counts are this node's counters for a queue.
func (m *Manager) Counts(queue string) map[string]float64 { return m.metrics.Counts(queue) }

// Collector exports each queue's depth, in flight, delayed and oldest age.
func (m *Manager) Collector() prometheus.Collector { return depthCollector{m} }

type depthCollector struct{ m *Manager }

var (
	descVisible  = prometheus.NewDesc("stratus_queue_messages_visible", "Messages ready to receive.", []string{"queue"}, nil)
	descInFlight = prometheus.NewDesc("stratus_queue_messages_in_flight", "Messages received and not yet deleted.", []string{"queue"}, nil)
	descDelayed  = prometheus.NewDesc("stratus_queue_messages_delayed", "Messages sent with a delay not yet over.", []string{"queue"}, nil)
	descOldest   = prometheus.NewDesc("stratus_queue_oldest_message_age_seconds", "Age of the oldest message in the queue.", []string{"queue"}, nil)
)

func (c depthCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descVisible
	ch <- descInFlight
	ch <- descDelayed
	ch <- descOldest
}

func (c depthCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, name := range c.m.List("") {
		st, err := c.m.Stats(ctx, name)
		if err != nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(descVisible, prometheus.GaugeValue, float64(st.Visible), name)
		ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(st.InFlight), name)
		ch <- prometheus.MustNewConstMetric(descDelayed, prometheus.GaugeValue, float64(st.Delayed), name)
		ch <- prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, st.OldestAge.Seconds(), name)
	}
}
