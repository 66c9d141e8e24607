// Package stratusapi serves the small Stratus API under /stratus/v1/ for
// what AWS has no API for here: reading function logs, usage reports, and
// downloading a function's code.
package stratusapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/stratus-faas/stratus/internal/alerts"
	"github.com/stratus-faas/stratus/internal/auth"
	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/logs"
	"github.com/stratus-faas/stratus/internal/meter"
	"github.com/stratus-faas/stratus/internal/registry"
	"github.com/stratus-faas/stratus/internal/store"
)

// API serves /stratus/v1.
type API struct {
	st      *store.Store
	reg     *registry.Registry
	prices  meter.Prices
	now     func() time.Time
	region  string
	auth    auth.Authorizer
	urls    URLChecker
	status  func(name string) Status
	buckets func() []BucketStatus
	alerts  func() []alerts.Alert

	schedules func() []ScheduleStatus
	node      func(context.Context) NodeStatus
}

// BucketStatus is an S3 bucket's contents.
type BucketStatus struct {
	Name          string    `json:"name"`
	Created       time.Time `json:"created"`
	Objects       int       `json:"objects"`
	Bytes         int64     `json:"bytes"`
	Uploads       int       `json:"uploads"`
	Notifications int       `json:"notifications"`
	// Targets are the ARNs its notifications go to.
	Targets []string `json:"targets,omitempty"`
}

// WithBuckets makes GET /stratus/v1/buckets report what buckets says.
func (a *API) WithBuckets(buckets func() []BucketStatus) *API {
	a.buckets = buckets
	return a
}

// Status is what this node runs of a function.
type Status struct {
	Function  string `json:"function"`
	Network   string `json:"network"` // "own" (a network per instance) or "host"
	Instances int    `json:"instances"`
	Warm      int    `json:"warm"` // idle, ready for the next request
	Busy      int    `json:"busy"` // running an invocation (or starting)
	// URLs are the function's URLs (of the function and its aliases).
	URLs []string `json:"urls,omitempty"`
}

// WithStatus makes GET /stratus/v1/functions report each function's
// Status, as status says.
func (a *API) WithStatus(status func(name string) Status) *API {
	a.status = status
	return a
}

// URLChecker verifies the signature of a link the server handed out.
type URLChecker interface {
	CheckURL(path, sig string, expires int64) bool
}

// New returns the API; authz decides what each caller may do (nil allows
// nothing), urls checks code links.
func New(st *store.Store, reg *registry.Registry, prices meter.Prices, region string, authz auth.Authorizer, urls URLChecker) *API {
	return &API{st: st, reg: reg, prices: prices, now: time.Now, region: region, auth: authz, urls: urls}
}

// Register adds the routes to mux. Logs are CloudWatch Logs' to allow
// (logs:FilterLogEvents on the function's log group); the rest are
// Stratus's own actions.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /stratus/v1/functions/{name}/logs", a.allow("logs:FilterLogEvents", func(r *http.Request) string {
		return "arn:aws:logs:" + a.region + ":" + function.AccountID + ":log-group:/aws/lambda/" + r.PathValue("name")
	}, a.logs))
	mux.HandleFunc("GET /stratus/v1/usage", a.allow("stratus:GetUsage", nil, a.usage))
	mux.HandleFunc("GET /stratus/v1/functions", a.allow("stratus:GetFunctionStatus", nil, a.functions))
	mux.HandleFunc("GET /stratus/v1/buckets", a.allow("stratus:GetBucketStatus", nil, func(w http.ResponseWriter, r *http.Request) {
		out := struct {
			Buckets []BucketStatus `json:"buckets"`
		}{Buckets: []BucketStatus{}}
		if a.buckets != nil {
			out.Buckets = append(out.Buckets, a.buckets()...)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	}))
	mux.HandleFunc("GET /stratus/v1/alerts", a.allow("stratus:GetAlerts", nil, func(w http.ResponseWriter, r *http.Request) {
		out := struct {
			Alerts []alerts.Alert `json:"alerts"`
		}{Alerts: []alerts.Alert{}}
		if a.alerts != nil {
			out.Alerts = a.alerts()
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	}))
	mux.HandleFunc("GET /stratus/v1/code/{key}", a.code)
	a.registerDashboard(mux)
}

// WithAlerts makes GET /stratus/v1/alerts report the alerting rules'
// conditions that hold.
func (a *API) WithAlerts(active func() []alerts.Alert) *API {
	a.alerts = active
	return a
}

// allow runs h once the caller is allowed action on the resource of r.
func (a *API) allow(action string, resource func(*http.Request) string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		res := "*"
		if resource != nil {
			res = resource(r)
		}
		if err := auth.Ask(r.Context(), a.auth, action, res); err != nil {
			fail(w, http.StatusForbidden, "AccessDeniedException", err.Error())
			return
		}
		h(w, r)
	}
}

type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func fail(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-ErrorType", code)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(apiError{code, msg})
}

// since parses ?since= as a duration back from now ("1h") or an RFC 3339 time.
func (a *API) since(r *http.Request, def time.Duration) (time.Time, error) {
	s := r.URL.Query().Get("since")
	if s == "" {
		if def == 0 {
			return time.Time{}, nil
		}
		return a.now().Add(-def), nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return a.now().Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, errors.New("since must be a duration such as 1h or an RFC 3339 time")
	}
	return t, nil
}

// logs streams a function's log lines as text, oldest first; with
// follow=true it keeps the response open and sends new lines as they come.
func (a *API) logs(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := function.ValidateName(name); err != nil {
		fail(w, http.StatusBadRequest, "InvalidParameterValueException", "invalid function name")
		return
	}
	if _, err := a.reg.Get(name); err != nil {
		fail(w, http.StatusNotFound, "ResourceNotFoundException", "Function not found: "+name)
		return
	}
	since, err := a.since(r, time.Hour)
	if err != nil {
		fail(w, http.StatusBadRequest, "InvalidParameterValueException", err.Error())
		return
	}
	follow := r.URL.Query().Get("follow") == "true"
	q := logs.Query{Function: name, Start: since, Follow: follow, RequestID: r.URL.Query().Get("request")}
	if l := r.URL.Query().Get("level"); l != "" {
		if q.Level = logs.ParseLevel(l); q.Level == 0 {
			fail(w, http.StatusBadRequest, "InvalidParameterValueException", "level must be TRACE, DEBUG, INFO, WARN, ERROR or FATAL")
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	// One line per event: its time, the invocation it belongs to ("-"
	// outside any), the line as the function or platform wrote it.
	var buf []byte
	_ = logs.Read(r.Context(), a.st, q, func(ev logs.Event) error {
		buf = ev.Time.UTC().AppendFormat(buf[:0], "2006-01-02T15:04:05.000Z")
		buf = append(buf, '\t')
		if ev.RequestID == "" {
			buf = append(buf, '-')
		}
		buf = append(buf, ev.RequestID...)
		buf = append(buf, '\t')
		buf = append(buf, ev.Message...)
		buf = append(buf, '\n')
		if _, err := w.Write(buf); err != nil {
			return err
		}
		if flusher != nil && follow {
			flusher.Flush()
		}
		return nil
	})
}

func (a *API) usage(w http.ResponseWriter, r *http.Request) {
	since, err := a.since(r, 0)
	if err != nil {
		fail(w, http.StatusBadRequest, "InvalidParameterValueException", err.Error())
		return
	}
	fn := r.URL.Query().Get("function")
	if fn != "" {
		if err := function.ValidateName(fn); err != nil {
			fail(w, http.StatusBadRequest, "InvalidParameterValueException", "invalid function name")
			return
		}
	}
	rep, err := meter.Aggregate(r.Context(), a.st, since, fn, a.prices)
	if err != nil {
		fail(w, http.StatusInternalServerError, "ServiceException", err.Error())
		return
	}
	out := struct {
		*meter.Report
		S3Prices meter.S3Prices   `json:"s3Prices"`
		Buckets  []meter.S3Totals `json:"buckets"`
	}{Report: rep, S3Prices: meter.DefaultS3Prices, Buckets: []meter.S3Totals{}}
	if fn == "" {
		if out.Buckets, err = meter.AggregateS3(r.Context(), a.st, since, meter.DefaultS3Prices); err != nil {
			fail(w, http.StatusInternalServerError, "ServiceException", err.Error())
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func (a *API) functions(w http.ResponseWriter, r *http.Request) {
	out := struct {
		Functions []Status `json:"functions"`
	}{Functions: []Status{}}
	if a.status != nil {
		for _, fn := range a.reg.List() {
			out.Functions = append(out.Functions, a.status(fn.Name))
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func (a *API) code(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	hexKey := strings.TrimPrefix(key, "layer-") // a layer's zip, from GetLayerVersion
	if len(hexKey) != 64 || strings.Trim(hexKey, "0123456789abcdef") != "" {
		fail(w, http.StatusBadRequest, "InvalidParameterValueException", "invalid code key")
		return
	}
	// A link from GetFunction (as Lambda's presigned S3 URL), or a
	// caller allowed to read any function's code.
	q := r.URL.Query()
	exp, _ := strconv.ParseInt(q.Get("X-Stratus-Expires"), 10, 64)
	if sig := q.Get("X-Stratus-Signature"); sig != "" {
		if a.urls == nil || !a.urls.CheckURL(r.URL.Path, sig, exp) {
			fail(w, http.StatusForbidden, "AccessDenied", "Request has expired or its signature does not match")
			return
		}
	} else {
		if err := auth.Ask(r.Context(), a.auth, "stratus:GetCode", "*"); err != nil {
			fail(w, http.StatusForbidden, "AccessDeniedException", err.Error())
			return
		}
	}
	data, err := a.reg.CodeZip(r.Context(), key)
	if err != nil {
		fail(w, http.StatusNotFound, "ResourceNotFoundException", "code not found")
		return
	}
	w.Header().Set("Content-Type", "application/zip")
	_, _ = w.Write(data)
}
