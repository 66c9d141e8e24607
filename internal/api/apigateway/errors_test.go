package apigateway

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/httpapi"
)

func TestToWire(t *testing.T) {
	a := &API{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	tests := []struct {
		err     error
		status  int
		code    string
		message string
	}{
		{function.Errorf(httpapi.ErrNotFound, "Invalid API identifier specified"), 404, "NotFoundException", "Invalid API identifier specified"},
		{function.Errorf(httpapi.ErrInvalid, "Invalid route key"), 400, "BadRequestException", "Invalid route key"},
		{function.Invalidf("bad function"), 400, "BadRequestException", "bad function"},
		{fmt.Errorf("create route: %w", function.Errorf(httpapi.ErrConflict, "Route exists")), 409, "ConflictException", "Route exists"},
		{fmt.Errorf("store api: %w", nats.ErrConnectionClosed), 503, "ServiceUnavailableException", ""},
		{errors.New("odd"), 500, "InternalServerErrorException", "odd"},
	}
	for _, tt := range tests {
		if e := a.toWire(tt.err); e.Status != tt.status || e.Code != tt.code || (tt.message != "" && e.Message != tt.message) {
			t.Errorf("%v: got %+v", tt.err, e)
		}
	}
}
