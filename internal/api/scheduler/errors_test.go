package scheduler

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/schedule"
)

func TestToWire(t *testing.T) {
	a := &API{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	tests := []struct {
		err     error
		status  int
		code    string
		message string
	}{
		{function.Errorf(schedule.ErrNotFound, "Schedule s does not exist."), 404, "ResourceNotFoundException", "Schedule s does not exist."},
		{function.Errorf(schedule.ErrExists, "Schedule s already exists."), 409, "ConflictException", "Schedule s already exists."},
		{fmt.Errorf("put: %w", function.Errorf(schedule.ErrInvalid, "bad expression")), 400, "ValidationException", "bad expression"},
		{fmt.Errorf("store schedule: %w", nats.ErrNoResponders), 503, "ServiceUnavailableException", "cannot reach its store"},
		{errors.New("odd"), 500, "InternalServerException", "odd"},
	}
	for _, tt := range tests {
		if e := a.toWire(tt.err); e.Status != tt.status || e.Code != tt.code || (tt.status != 503 && e.Message != tt.message) {
			t.Errorf("%v: got %+v", tt.err, e)
		}
	}
}
