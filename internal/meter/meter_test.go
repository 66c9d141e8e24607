package meter

import (
	"math"
	"testing"
	"time"
)

func TestBilledMs(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want int64
	}{
		{0, 0},
		{time.Microsecond, 1},
		{time.Millisecond, 1},
		{1001 * time.Microsecond, 2},
		{38660 * time.Microsecond, 39},
	}
	for _, tt := range tests {
		if got := BilledMs(tt.d); got != tt.want {
			t.Errorf("BilledMs(%v) = %d, want %d", tt.d, got, tt.want)
		}
	}
}

func TestTotalsAndCost(t *testing.T) {
	var tot Totals
	for _, r := range []Record{
		{MemoryMB: 1024, BilledMs: 1000, Outcome: "success", Cold: true, InitMs: 12},
		{MemoryMB: 512, BilledMs: 2000, Outcome: "error"},
		{MemoryMB: 128, Outcome: "throttle"},
	} {
		tot.add(r)
	}
	if tot.Requests != 2 || tot.Errors != 1 || tot.Throttles != 1 || tot.ColdStarts != 1 || tot.BilledMs != 3000 {
		t.Fatalf("totals %+v", tot)
	}
	if tot.GBSeconds != 2 {
		t.Errorf("GB-seconds %v, want 2", tot.GBSeconds)
	}
	cost := DefaultPrices.cost(&tot)
	want := 2.0/1e6*0.20 + 2*0.0000166667
	if math.Abs(cost-want) > 1e-15 {
		t.Errorf("cost %v, want %v", cost, want)
	}
}

func TestRoundDropsFloatNoise(t *testing.T) {
	tot := Totals{GBSeconds: 0.1 + 0.2, Cost: 0.004750000000000002, InitMsTotal: 1.23456789}
	tot.round()
	if tot.GBSeconds != 0.3 || tot.Cost != 0.00475 || tot.InitMsTotal != 1.235 {
		t.Fatalf("rounded: %+v", tot)
	}
}
