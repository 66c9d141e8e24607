package server

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratus-faas/stratus/internal/events"
	"github.com/stratus-faas/stratus/internal/logs"
	"github.com/stratus-faas/stratus/internal/pool"
	"github.com/stratus-faas/stratus/internal/registry"
	"github.com/stratus-faas/stratus/internal/store"
)

// nodeCollector reports, at each scrape, what other packages keep but do
// not export themselves: each function's warm and busy instances, the
// asynchronous event stream, the store's health and disk, log lines lost.
// Labels are bounded by the number of functions.
type nodeCollector struct {
	reg   *registry.Registry
	pools *pool.Set
	async *events.Async
	st    *store.Store
	sink  *logs.Sink
}

var (
	descInstances   = prometheus.NewDesc("stratus_function_instances", "Instances of a function on this node, by state (warm: idle; busy: running or starting).", []string{"function", "state"}, nil)
	descProvisioned = prometheus.NewDesc("stratus_function_provisioned_instances", "Provisioned instances of a function alive on this node (among the warm and busy).", []string{"function"}, nil)
	descAsyncDepth  = prometheus.NewDesc("stratus_async_events_pending", "Accepted asynchronous events not yet done (the stream, all nodes).", nil, nil)
	descAsyncAge    = prometheus.NewDesc("stratus_async_oldest_event_age_seconds", "Age of the oldest pending asynchronous event.", nil, nil)
	descStoreUp     = prometheus.NewDesc("stratus_store_up", "1 when this node reaches its store (NATS JetStream).", nil, nil)
	descWritable    = prometheus.NewDesc("stratus_store_writable", "1 when the store accepts writes (0: its disk is full or nearly).", nil, nil)
	descStoreUsed   = prometheus.NewDesc("stratus_store_used_bytes", "Bytes the store holds.", nil, nil)
	descStoreMax    = prometheus.NewDesc("stratus_store_max_bytes", "The most the store may hold.", nil, nil)
	descDiskFree    = prometheus.NewDesc("stratus_store_disk_free_bytes", "Free bytes on the disk of the embedded store.", nil, nil)
	descLogsDropped = prometheus.NewDesc("stratus_log_lines_dropped_total", "Log lines dropped: written faster than they could be stored, or refused by the store.", nil, nil)
)

func (c nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descInstances, descProvisioned, descAsyncDepth, descAsyncAge, descStoreUp, descWritable, descStoreUsed, descStoreMax, descDiskFree, descLogsDropped} {
		ch <- d
	}
}

func (c nodeCollector) Collect(ch chan<- prometheus.Metric) {
	for _, fn := range c.reg.List() {
		idle, total := c.pools.Instances(fn.Name)
		ch <- prometheus.MustNewConstMetric(descInstances, prometheus.GaugeValue, float64(idle), fn.Name, "warm")
		ch <- prometheus.MustNewConstMetric(descInstances, prometheus.GaugeValue, float64(total-idle), fn.Name, "busy")
		ch <- prometheus.MustNewConstMetric(descProvisioned, prometheus.GaugeValue, float64(c.pools.ProvisionedInstances(fn.Name)), fn.Name)
	}
	ch <- prometheus.MustNewConstMetric(descLogsDropped, prometheus.CounterValue, float64(c.sink.Dropped.Load()))
	up := 0.0
	if c.st.NC.IsConnected() {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(descStoreUp, prometheus.GaugeValue, up)
	writable := 1.0
	if c.st.Writable() != nil {
		writable = 0
	}
	ch <- prometheus.MustNewConstMetric(descWritable, prometheus.GaugeValue, writable)
	if up == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if s, err := c.async.Stats(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(descAsyncDepth, prometheus.GaugeValue, float64(s.Pending))
		ch <- prometheus.MustNewConstMetric(descAsyncAge, prometheus.GaugeValue, s.OldestAge)
	}
	if d, err := c.st.Disk(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(descStoreUsed, prometheus.GaugeValue, float64(d.Used))
		if d.Max > 0 {
			ch <- prometheus.MustNewConstMetric(descStoreMax, prometheus.GaugeValue, float64(d.Max))
		}
		if d.Free >= 0 {
			ch <- prometheus.MustNewConstMetric(descDiskFree, prometheus.GaugeValue, float64(d.Free))
		}
	}
}
