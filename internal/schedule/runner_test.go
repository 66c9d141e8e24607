package schedule

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"
)

func TestDeliverRetriesThenDeadLetters(t *testing.T) {
	boom := errors.New("store unreachable")
	tests := []struct {
		name      string
		failures  int // then success
		err       error
		retry     RetryPolicy
		tickAgo   time.Duration
		calls     int
		dead      bool
		exhausted string
		code      string
	}{
		{"recovers", 2, boom, RetryPolicy{3600, 5}, 0, 3, false, "", ""},
		{"out of attempts", 100, boom, RetryPolicy{3600, 2}, 0, 3, true, "MaximumRetryAttempts", "TargetDeliveryFailed"},
		{"no retries", 100, boom, RetryPolicy{3600, 0}, 0, 1, true, "MaximumRetryAttempts", "TargetDeliveryFailed"},
		{"too old", 100, boom, RetryPolicy{60, 185}, 60*time.Second - time.Microsecond, 1, true, "MaximumEventAgeInSeconds", "TargetDeliveryFailed"},
		{"target gone", 100, ErrTargetGone, RetryPolicy{3600, 185}, 0, 1, true, "", "ResourceNotFoundException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			var dead map[string]string
			r := &Runner{
				log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: time.Now, backoff: time.Millisecond, stopped: make(chan struct{}),
				fire: func(context.Context, string, []byte, string) (bool, error) {
					calls++
					if calls <= tt.failures {
						return false, tt.err
					}
					return true, nil
				},
				dlq: func(_ context.Context, arn string, body []byte, attrs map[string]string) error {
					if arn != "arn:aws:sqs:us-east-1:000000000000:dlq" || string(body) != `{"k":1}` {
						t.Errorf("dead letter to %s: %s", arn, body)
					}
					dead = attrs
					return nil
				},
			}
			s := &Schedule{Name: "s", Group: "default", TargetARN: "arn:aws:lambda:us-east-1:000000000000:function:f", Retry: tt.retry,
				DeadLetterARN: "arn:aws:sqs:us-east-1:000000000000:dlq", ARN: "arn:aws:scheduler:us-east-1:000000000000:schedule/default/s"}
			_, err := r.deliver(s, []byte(`{"k":1}`), "id-1", time.Now().Add(-tt.tickAgo))
			if calls != tt.calls || (err != nil) != tt.dead || (dead != nil) != tt.dead {
				t.Fatalf("calls %d (want %d), err %v, dead letter %v", calls, tt.calls, err, dead)
			}
			if tt.dead && (dead["EXHAUSTED_RETRY_CONDITION"] != tt.exhausted || dead["ERROR_CODE"] != tt.code ||
				dead["SCHEDULE_ARN"] != s.ARN || dead["EXECUTION_ID"] != "id-1" || dead["TARGET_ARN"] != s.TargetARN) {
				t.Fatalf("attributes %v", dead)
			}
		})
	}
}

func TestRetryPolicyValidated(t *testing.T) {
	for _, rp := range []RetryPolicy{{59, 1}, {86401, 1}, {60, -1}, {60, 186}} {
		s := &Schedule{Name: "s", Expression: "rate(1 minute)", Retry: rp, Created: time.Now()}
		if _, err := s.Validate(); err == nil {
			t.Errorf("%+v accepted", rp)
		}
	}
	s := &Schedule{Name: "s", Expression: "rate(1 minute)", Created: time.Now()}
	if _, err := s.Validate(); err != nil || s.Retry != DefaultRetry {
		t.Errorf("defaults: %v %+v", err, s.Retry)
	}
}
