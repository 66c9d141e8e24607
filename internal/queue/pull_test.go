package queue

import "testing"

func TestPullSize(t *testing.T) {
	tests := []struct {
		name       string
		want, have int
		pull       int
	}{
		{"empty batch of one", 1, 0, 1},
		{"batch of one filled by a long poll", 1, 1, 0},
		{"batch of ten, one taken", 10, 1, 9},
		{"batch of ten, full", 10, 10, 0},
		{"overfilled", 2, 3, 0},
		{"largest mapping batch", 10000, 0, 10000},
		{"largest mapping batch, one short", 10000, 9999, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pullSize(tt.want, tt.have); got != tt.pull {
				t.Fatalf("pullSize(%d, %d) = %d, want %d", tt.want, tt.have, got, tt.pull)
			}
		})
	}
}
