package lambda

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/stratus-faas/stratus/internal/auth"
	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/invoke"
	"github.com/stratus-faas/stratus/internal/registry"
)

func TestToAWS(t *testing.T) {
	a := &API{log: slog.New(slog.NewTextHandler(io.Discard, nil)), opts: Options{Region: "us-east-1"}}
	tests := []struct {
		err     error
		status  int
		code    string
		message string
	}{
		{function.Invalidf("Timeout must be between 1 and 900"), 400, "InvalidParameterValueException", "Timeout must be between 1 and 900"},
		{fmt.Errorf("update: %w", function.Invalidf("deep")), 400, "InvalidParameterValueException", "deep"},
		{function.Errorf(function.ErrTooLarge, "Request must be smaller"), 413, "RequestTooLargeException", "Request must be smaller"},
		{invoke.ErrInvalidContent, 400, "InvalidRequestContentException", "Could not parse request body into json"},
		{function.Errorf(registry.ErrNotFound, "x"), 404, "ResourceNotFoundException", "Function not found: arn:aws:lambda:us-east-1:000000000000:function:fn"},
		{function.Errorf(registry.ErrAliasNotFound, "arn:...:live"), 404, "ResourceNotFoundException", "Alias not found: arn:...:live"},
		{registry.ErrPrecondition, 412, "PreconditionFailedException", "Revision Id"},
		{&invoke.ThrottleError{Reason: "ReservedFunctionConcurrentInvocationLimitExceeded", RetryAfter: time.Second}, 429, "TooManyRequestsException", "Rate Exceeded."},
		{invoke.ErrShuttingDown, 500, "ServiceException", "shutting down"},
		{fmt.Errorf("publish: %w", nats.ErrNoResponders), 503, "ServiceException", "cannot reach its store"},
		{errors.New("something odd"), 500, "ServiceException", "internal error: something odd"},
		{&auth.Denied{Action: "lambda:DeleteFunction", Resource: "arn:aws:lambda:us-east-1:000000000000:function:fn", Who: "arn:aws:iam::000000000000:user/bob"}, 403, "AccessDeniedException",
			"User: arn:aws:iam::000000000000:user/bob is not authorized to perform: lambda:DeleteFunction on resource: arn:aws:lambda:us-east-1:000000000000:function:fn because no identity-based policy allows the lambda:DeleteFunction action"},
		{function.Errorf(registry.ErrStatementSid, "The statement id (s) provided already exists."), 409, "ResourceConflictException", "already exists"},
	}
	for _, tt := range tests {
		e := a.toAWS(tt.err, "fn")
		if e.Status != tt.status || e.Code != tt.code || !strings.Contains(e.Message, tt.message) {
			t.Errorf("%v: got %d %s %q, want %d %s %q", tt.err, e.Status, e.Code, e.Message, tt.status, tt.code, tt.message)
		}
	}
}

func TestHandlerErrorsReachTheWireOnce(t *testing.T) {
	a := &API{log: slog.New(slog.NewTextHandler(io.Discard, nil)), opts: Options{Region: "us-east-1", Auth: allowAll{}}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /f/{name}", a.h("GetFunction", func(w http.ResponseWriter, r *http.Request) error {
		if r.URL.Query().Get("other") != "" {
			return a.at("other", function.Errorf(registry.ErrNotFound, "gone"))
		}
		return function.Errorf(registry.ErrNotFound, "gone")
	}))
	for _, tt := range []struct{ url, arn string }{{"/f/mine", "function:mine"}, {"/f/mine?other=1", "function:other"}} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", tt.url, nil))
		if rec.Code != 404 || rec.Header().Get("X-Amzn-ErrorType") != "ResourceNotFoundException" || !strings.Contains(rec.Body.String(), tt.arn) {
			t.Errorf("%s: %d %s %s", tt.url, rec.Code, rec.Header().Get("X-Amzn-ErrorType"), rec.Body.String())
		}
	}
}

type allowAll struct{}

func (allowAll) Authorize(context.Context, string, string, ...auth.Cond) error { return nil }
func (allowAll) AuthorizeWith(context.Context, *auth.Policy, string, string, ...auth.Cond) error {
	return nil
}

// An API without an authorizer allows nothing: a missing dependency must
// not open every route.
func TestNoAuthorizerAllowsNothing(t *testing.T) {
	a := &API{log: slog.New(slog.NewTextHandler(io.Discard, nil)), opts: Options{Region: "us-east-1"}}
	ran := false
	h := a.h("GetFunction", func(http.ResponseWriter, *http.Request) error { ran = true; return nil })
	rec := httptest.NewRecorder()
	h(rec, httptest.NewRequest("GET", "/f/x", nil))
	if ran || rec.Code != 403 || rec.Header().Get("X-Amzn-ErrorType") != "AccessDeniedException" {
		t.Fatalf("ran %v, answered %d %s", ran, rec.Code, rec.Body)
	}
}
