package invoke

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratus-faas/stratus/internal/meter"
)

// Metrics are the invocation counters exported on /metrics.
type Metrics struct {
	invocations *prometheus.CounterVec
	coldStarts  *prometheus.CounterVec
	throttles   *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	initTime    *prometheus.HistogramVec
	gbSeconds   *prometheus.CounterVec
	streamed    *prometheus.CounterVec
	loops       *prometheus.CounterVec
	ooms        *prometheus.CounterVec
}

// NewMetrics registers the invocation metrics with reg.
func NewMetrics(reg prometheus.Registerer, live func() float64, inflight func() float64) *Metrics {
	m := &Metrics{
		invocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stratus_invocations_total", Help: "Invocations by function and outcome.",
		}, []string{"function", "outcome"}),
		coldStarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stratus_cold_starts_total", Help: "Invocations that started a new instance.",
		}, []string{"function"}),
		throttles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stratus_throttles_total", Help: "Invocations refused over a concurrency limit.",
		}, []string{"function"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "stratus_invocation_duration_seconds", Help: "Run time of invocations.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 14),
		}, []string{"function"}),
		initTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "stratus_init_duration_seconds", Help: "Init phase of new instances.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"function"}),
		gbSeconds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stratus_billed_gb_seconds_total", Help: "Billed compute in GB-seconds.",
		}, []string{"function"}),
		streamed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stratus_streamed_response_bytes_total", Help: "Bytes of responses the functions streamed.",
		}, []string{"function"}),
		loops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stratus_recursive_invocations_dropped_total", Help: "Invocations stopped as part of a recursive loop (Lambda's RecursiveInvocationsDropped).",
		}, []string{"function"}),
		ooms: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stratus_instance_ooms_total", Help: "Instances the kernel killed for exceeding the function's memory.",
		}, []string{"function"}),
	}
	reg.MustRegister(m.invocations, m.coldStarts, m.throttles, m.duration, m.initTime, m.gbSeconds, m.streamed, m.loops, m.ooms,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "stratus_instances", Help: "Live instances."}, live),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "stratus_inflight_invocations", Help: "Invocations running now."}, inflight),
	)
	return m
}

func (m *Metrics) observe(r meter.Record) {
	m.invocations.WithLabelValues(r.Function, string(r.Outcome)).Inc()
	m.duration.WithLabelValues(r.Function).Observe(r.DurationMs / 1000)
	m.gbSeconds.WithLabelValues(r.Function).Add(r.GBSeconds())
	if r.Streamed > 0 {
		m.streamed.WithLabelValues(r.Function).Add(float64(r.Streamed))
	}
	if r.Cold {
		m.coldStarts.WithLabelValues(r.Function).Inc()
		m.initTime.WithLabelValues(r.Function).Observe(r.InitMs / 1000)
	}
}

func (m *Metrics) throttle(fn string) {
	m.throttles.WithLabelValues(fn).Inc()
}

func (m *Metrics) loopStopped(fn string) {
	m.loops.WithLabelValues(fn).Inc()
}

func (m *Metrics) oom(fn string) {
	m.ooms.WithLabelValues(fn).Inc()
}
