// Package alerts evaluates, inside the server, the conditions of the
// alerting rules shipped in monitoring/alerts.yml, on the same metrics
// /metrics exports, so that the dashboard can show what holds now without
// a Prometheus. Prometheus remains the alerting system: these conditions
// ignore the rules' "for" waits and fire as soon as they hold.
package alerts

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Alert is a condition that holds, for one function, queue or the node.
type Alert struct {
	Name     string  `json:"name"`
	Severity string  `json:"severity"`
	Subject  string  `json:"subject"` // function or queue name; "" for the node
	Summary  string  `json:"summary"`
	Value    float64 `json:"value"`
}

// snapshot is the metric families at one time.
type snapshot struct {
	at  time.Time
	fam map[string]*dto.MetricFamily
}

// Evaluator samples a gatherer and evaluates the rules on its samples.
type Evaluator struct {
	g     prometheus.Gatherer
	now   func() time.Time
	every time.Duration

	mu    sync.Mutex
	snaps []snapshot // oldest first, spanning the longest window
}

// longest window a rule looks back over.
const window = 15 * time.Minute

// New returns an evaluator sampling g every interval.
func New(g prometheus.Gatherer, every time.Duration, now func() time.Time) *Evaluator {
	return &Evaluator{g: g, every: every, now: now}
}

// Run samples until ctx ends.
func (e *Evaluator) Run(ctx context.Context) {
	t := time.NewTicker(e.every)
	defer t.Stop()
	for {
		e.Sample()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sample takes one sample now.
func (e *Evaluator) Sample() {
	fams, err := e.g.Gather()
	if err != nil && len(fams) == 0 {
		return
	}
	s := snapshot{at: e.now(), fam: map[string]*dto.MetricFamily{}}
	for _, f := range fams {
		s.fam[f.GetName()] = f
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.snaps = append(e.snaps, s)
	for len(e.snaps) > 2 && s.at.Sub(e.snaps[1].at) > window {
		e.snaps = e.snaps[1:]
	}
}

// Active evaluates every rule on the latest sample.
func (e *Evaluator) Active() []Alert {
	e.mu.Lock()
	snaps := slices.Clone(e.snaps)
	e.mu.Unlock()
	if len(snaps) == 0 {
		return []Alert{}
	}
	v := view{snaps: snaps}
	out := []Alert{}
	for _, r := range Rules {
		out = append(out, r.eval(v)...)
	}
	slices.SortFunc(out, func(a, b Alert) int { return strings.Compare(a.Name+a.Subject, b.Name+b.Subject) })
	return out
}

// view reads series of the samples.
type view struct{ snaps []snapshot }

func (v view) last() snapshot { return v.snaps[len(v.snaps)-1] }

// at is the sample closest to d before the last one (the oldest there is).
func (v view) at(d time.Duration) snapshot {
	want := v.last().at.Add(-d)
	for _, s := range v.snaps {
		if !s.at.Before(want) {
			return s
		}
	}
	return v.snaps[0]
}

// sum adds a family's values by one label, keeping samples whose labels
// pass keep.
func sum(s snapshot, name, by string, keep func(map[string]string) bool) map[string]float64 {
	out := map[string]float64{}
	f := s.fam[name]
	if f == nil {
		return out
	}
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if keep != nil && !keep(labels) {
			continue
		}
		var val float64
		switch {
		case m.Counter != nil:
			val = m.GetCounter().GetValue()
		case m.Gauge != nil:
			val = m.GetGauge().GetValue()
		default:
			continue
		}
		out[labels[by]] += val
	}
	return out
}

// rate is the per-second increase of a counter by label over d.
func (v view) rate(name, by string, d time.Duration, keep func(map[string]string) bool) map[string]float64 {
	now, then := v.last(), v.at(d)
	secs := now.at.Sub(then.at).Seconds()
	out := map[string]float64{}
	if secs <= 0 {
		return out
	}
	old := sum(then, name, by, keep)
	for k, x := range sum(now, name, by, keep) {
		if inc := x - old[k]; inc > 0 {
			out[k] = inc / secs
		}
	}
	return out
}

// increase is a counter's increase by label over d.
func (v view) increase(name, by string, d time.Duration) map[string]float64 {
	now, then := v.last(), v.at(d)
	old := sum(then, name, by, nil)
	out := map[string]float64{}
	for k, x := range sum(now, name, by, nil) {
		if inc := x - old[k]; inc > 0 {
			out[k] = inc
		}
	}
	return out
}

func (v view) gauge(name, by string) map[string]float64 { return sum(v.last(), name, by, nil) }

// Rule is one rule of alerts.yml, as the server evaluates it.
type Rule struct {
	Name, Severity string
	eval           func(view) []Alert
}

func each(name, severity string, values map[string]float64, holds func(float64) bool, summary func(subject string, v float64) string) []Alert {
	var out []Alert
	for k, x := range values {
		if holds(x) {
			out = append(out, Alert{Name: name, Severity: severity, Subject: k, Value: x, Summary: summary(k, x)})
		}
	}
	return out
}

func failing(l map[string]string) bool { return l["outcome"] == "error" || l["outcome"] == "timeout" }

func pct(x float64) string { return fmt.Sprintf("%.0f%%", 100*x) }

// Rules mirror monitoring/alerts.yml (a test holds them to the same names).
var Rules = []Rule{
	{"StratusFunctionErrors", "warning", func(v view) []Alert {
		all := v.rate("stratus_invocations_total", "function", 5*time.Minute, nil)
		bad := v.rate("stratus_invocations_total", "function", 5*time.Minute, failing)
		ratio := map[string]float64{}
		for fn, r := range bad {
			if all[fn] > 0 {
				ratio[fn] = r / all[fn]
			}
		}
		return each("StratusFunctionErrors", "warning", ratio, func(x float64) bool { return x > 0.05 },
			func(fn string, x float64) string { return fn + ": " + pct(x) + " of invocations fail" })
	}},
	{"StratusFunctionThrottled", "warning", func(v view) []Alert {
		return each("StratusFunctionThrottled", "warning", v.rate("stratus_throttles_total", "function", 5*time.Minute, nil), func(x float64) bool { return x > 0 },
			func(fn string, x float64) string { return fmt.Sprintf("%s is throttled (%.2f/s)", fn, x) })
	}},
	{"StratusColdStartRate", "info", func(v view) []Alert {
		all := v.rate("stratus_invocations_total", "function", window, nil)
		cold := v.rate("stratus_cold_starts_total", "function", window, nil)
		ratio := map[string]float64{}
		for fn, r := range cold {
			if all[fn] > 0.1 {
				ratio[fn] = r / all[fn]
			}
		}
		return each("StratusColdStartRate", "info", ratio, func(x float64) bool { return x > 0.5 },
			func(fn string, x float64) string {
				return fn + ": " + pct(x) + " cold starts (provisioned concurrency or a longer idle timeout would help)"
			})
	}},
	{"StratusInstanceOOM", "warning", func(v view) []Alert {
		return each("StratusInstanceOOM", "warning", v.increase("stratus_instance_ooms_total", "function", 10*time.Minute), func(x float64) bool { return x > 0 },
			func(fn string, _ float64) string { return fn + " ran out of memory: raise MemorySize" })
	}},
	{"StratusRecursiveLoop", "warning", func(v view) []Alert {
		return each("StratusRecursiveLoop", "warning", v.increase("stratus_recursive_invocations_dropped_total", "function", 10*time.Minute), func(x float64) bool { return x > 0 },
			func(fn string, _ float64) string { return fn + " runs in a recursive loop, which Stratus stopped" })
	}},
	{"StratusDeadLettersGrowing", "warning", func(v view) []Alert {
		return each("StratusDeadLettersGrowing", "warning", v.increase("stratus_queue_messages_dead_lettered_total", "queue", 10*time.Minute), func(x float64) bool { return x > 0 },
			func(q string, _ float64) string { return "messages of queue " + q + " go to its dead-letter queue" })
	}},
	{"StratusQueueMessageAge", "warning", func(v view) []Alert {
		return each("StratusQueueMessageAge", "warning", v.gauge("stratus_queue_oldest_message_age_seconds", "queue"), func(x float64) bool { return x > 300 },
			func(q string, x float64) string {
				return fmt.Sprintf("the oldest message of queue %s is %s old", q, time.Duration(x)*time.Second)
			})
	}},
	{"StratusAsyncEventAge", "warning", func(v view) []Alert {
		return each("StratusAsyncEventAge", "warning", v.gauge("stratus_async_oldest_event_age_seconds", ""), func(x float64) bool { return x > 300 },
			func(_ string, x float64) string {
				return fmt.Sprintf("the oldest asynchronous event is %s old", time.Duration(x)*time.Second)
			})
	}},
	{"StratusStoreDown", "critical", func(v view) []Alert {
		return each("StratusStoreDown", "critical", v.gauge("stratus_store_up", ""), func(x float64) bool { return x == 0 },
			func(string, float64) string { return "this node cannot reach its store: it accepts no durable work" })
	}},
	{"StratusStoreNotWritable", "critical", func(v view) []Alert {
		return each("StratusStoreNotWritable", "critical", v.gauge("stratus_store_writable", ""), func(x float64) bool { return x == 0 },
			func(string, float64) string { return "the store refuses writes: its disk is full" })
	}},
	{"StratusStoreDiskNearlyFull", "warning", func(v view) []Alert {
		used, max := v.gauge("stratus_store_used_bytes", ""), v.gauge("stratus_store_max_bytes", "")
		ratio := map[string]float64{}
		if max[""] > 0 {
			ratio[""] = used[""] / max[""]
		}
		return each("StratusStoreDiskNearlyFull", "warning", ratio, func(x float64) bool { return x > 0.9 },
			func(_ string, x float64) string { return "the store holds " + pct(x) + " of what it may" })
	}},
}
