package schedule

import (
	"errors"
	"testing"
	"time"
)

func TestParseAndNext(t *testing.T) {
	anchor := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		expr, tz string
		after    time.Time
		want     time.Time
	}{
		{"rate(5 minutes)", "", anchor.Add(time.Minute), anchor.Add(5 * time.Minute)},
		{"rate(1 hour)", "", anchor.Add(time.Hour), anchor.Add(2 * time.Hour)},
		{"rate(10 seconds)", "", anchor.Add(15 * time.Second), anchor.Add(20 * time.Second)},
		{"cron(0 12 * * ? *)", "", anchor, time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)},
		{"cron(0 12 * * ? *)", "", time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC), time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)},
		{"cron(15 10 ? * MON-FRI *)", "", anchor, time.Date(2026, 11, 26, 10, 15, 0, 0, time.UTC)}, // a Thursday
		{"cron(15 10 ? * 7 *)", "", anchor, time.Date(2026, 11, 28, 10, 15, 0, 0, time.UTC)},       // Saturday
		{"cron(0/15 * * * ? *)", "", anchor.Add(time.Minute), anchor.Add(15 * time.Minute)},
		{"cron(0 9 1 JAN,JUL ? 2027)", "", anchor, time.Date(2027, 1, 1, 9, 0, 0, 0, time.UTC)},
		{"cron(0 8 * * ? *)", "Europe/Paris", anchor, time.Date(2026, 11, 27, 7, 0, 0, 0, time.UTC)},
		{"at(2026-12-01T00:00:00)", "", anchor, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
		{"at(2026-01-01T00:00:00)", "", anchor, time.Time{}},
	}
	for _, tt := range tests {
		e, err := Parse(tt.expr, tt.tz, anchor)
		if err != nil {
			t.Errorf("%s: %v", tt.expr, err)
			continue
		}
		if got := e.Next(tt.after); !got.Equal(tt.want) {
			t.Errorf("%s after %v = %v, want %v", tt.expr, tt.after, got, tt.want)
		}
	}
}

func TestParseInvalid(t *testing.T) {
	for _, expr := range []string{
		"rate(0 minutes)", "rate(5 minute)", "rate(1 minutes)", "rate(5 weeks)", "rate(five minutes)",
		"cron(0 12 * * * *)", "cron(0 12 ? * ? *)", "cron(0 12 * *)", "cron(61 * * * ? *)", "cron(0 12 L * ? *)",
		"cron(0 12 ? * 6#3 *)", "at(tomorrow)", "every day", "",
	} {
		if _, err := Parse(expr, "", time.Now()); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: %v", expr, err)
		}
	}
	if _, err := Parse("rate(1 day)", "Mars/Olympus", time.Now()); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad zone: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"cron(0/5 8-17 ? * MON-FRI *)", "rate(3 hours)", "at(2030-01-01T00:00:00)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		e, err := Parse(expr, "", time.Unix(0, 0))
		if err == nil {
			e.Next(time.Unix(1e9, 0)) // must terminate without panic
		}
	})
}
