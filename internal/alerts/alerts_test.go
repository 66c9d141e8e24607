package alerts

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The server evaluates the rules alerts.yml ships, no more, no fewer.
func TestRulesMatchTheRuleFile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "monitoring", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var inFile []string
	for _, m := range regexp.MustCompile(`(?m)^\s*- alert: (\S+)`).FindAllStringSubmatch(string(b), -1) {
		inFile = append(inFile, m[1])
	}
	var here []string
	for _, r := range Rules {
		here = append(here, r.Name)
	}
	slices.Sort(inFile)
	slices.Sort(here)
	if !slices.Equal(inFile, here) {
		t.Errorf("alerts.yml has %v, the evaluator %v", inFile, here)
	}
}

func TestEvaluate(t *testing.T) {
	reg := prometheus.NewRegistry()
	inv := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stratus_invocations_total"}, []string{"function", "outcome"})
	thr := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stratus_throttles_total"}, []string{"function"})
	age := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "stratus_queue_oldest_message_age_seconds"}, []string{"queue"})
	up := prometheus.NewGauge(prometheus.GaugeOpts{Name: "stratus_store_up"})
	reg.MustRegister(inv, thr, age, up)
	now := time.Unix(1_000_000, 0)
	e := New(reg, time.Minute, func() time.Time { return now })
	up.Set(1)
	e.Sample()
	if got := e.Active(); len(got) != 0 {
		t.Fatalf("alerts at rest: %v", got)
	}
	now = now.Add(5 * time.Minute)
	inv.WithLabelValues("shaky", "success").Add(80)
	inv.WithLabelValues("shaky", "error").Add(20)
	inv.WithLabelValues("fine", "success").Add(100)
	thr.WithLabelValues("fine").Add(3)
	age.WithLabelValues("orders").Set(600)
	age.WithLabelValues("fast").Set(1)
	up.Set(0)
	e.Sample()
	var names []string
	for _, a := range e.Active() {
		names = append(names, a.Name+"/"+a.Subject)
	}
	want := []string{"StratusFunctionErrors/shaky", "StratusFunctionThrottled/fine", "StratusQueueMessageAge/orders", "StratusStoreDown/"}
	if !slices.Equal(names, want) {
		t.Errorf("alerts %v, want %v", names, want)
	}
}
