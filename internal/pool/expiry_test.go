package pool

import (
	"testing"
	"time"
)

func TestExpiry(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(secs ...int) []time.Time {
		out := make([]time.Time, len(secs))
		for i, s := range secs {
			out[i] = t0.Add(time.Duration(s) * time.Second)
		}
		return out
	}
	tests := []struct {
		name     string
		lastUsed []time.Time
		now      time.Time
		expired  int
		next     time.Duration
	}{
		{"none idle", nil, t0, 0, 0},
		{"none expired", at(10, 20), t0.Add(30 * time.Second), 0, 40 * time.Second},
		{"oldest expired", at(0, 50), t0.Add(60 * time.Second), 1, 50 * time.Second},
		{"exactly at timeout", at(0), t0.Add(60 * time.Second), 1, 0},
		{"all expired", at(0, 1, 2), t0.Add(time.Hour), 3, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, next := expiry(len(tt.lastUsed), func(i int) time.Time { return tt.lastUsed[i] }, tt.now, time.Minute)
			if k != tt.expired || next != tt.next {
				t.Fatalf("expiry = %d, %v; want %d, %v", k, next, tt.expired, tt.next)
			}
		})
	}
}
