// Package httpapi keeps API Gateway HTTP APIs (routes, integrations,
// stages) in the store, with an in-memory view a watch keeps current, and
// matches requests to routes with API Gateway's precedence.
package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/store"
)

// Errors the wire layer maps.
var (
	ErrNotFound = errors.New("not found")
	ErrInvalid  = errors.New("bad request")
	ErrConflict = errors.New("conflict")
)

// API is one HTTP API with everything it holds.
type API struct {
	ID           string                  `json:"apiId"`
	Name         string                  `json:"name"`
	Description  string                  `json:"description,omitempty"`
	Created      time.Time               `json:"createdDate"`
	Integrations map[string]*Integration `json:"integrations"`
	Routes       map[string]*Route       `json:"routes"`
	Stages       map[string]*Stage       `json:"stages"`
	// Cors, when set, is answered and applied by the gateway for every
	// route, as API Gateway's CorsConfiguration is.
	Cors *function.Cors `json:"cors,omitempty"`
}

// Integration sends requests to a Lambda function (AWS_PROXY).
type Integration struct {
	ID                   string `json:"integrationId"`
	Type                 string `json:"integrationType"`
	URI                  string `json:"integrationUri"` // function ARN or name, optionally qualified
	PayloadFormatVersion string `json:"payloadFormatVersion"`
	TimeoutInMillis      int    `json:"timeoutInMillis,omitempty"`
	Description          string `json:"description,omitempty"`
}

// Route maps a route key ("GET /orders/{id}", "$default") to a target.
type Route struct {
	ID       string `json:"routeId"`
	RouteKey string `json:"routeKey"`
	Target   string `json:"target,omitempty"` // "integrations/ID"
}

// Stage is a deployment stage; Stratus serves the $default stage.
type Stage struct {
	Name       string    `json:"stageName"`
	AutoDeploy bool      `json:"autoDeploy"`
	Created    time.Time `json:"createdDate"`
}

// FunctionRef extracts the function from an integration URI: a function
// ARN, or API Gateway's invocation URI wrapping one.
func FunctionRef(uri string) string {
	if i := strings.Index(uri, "/functions/"); i >= 0 && strings.HasPrefix(uri, "arn:aws:apigateway:") {
		return strings.TrimSuffix(uri[i+len("/functions/"):], "/invocations")
	}
	return uri
}

// NewID makes a 10-character id of lower-case letters and digits, as API Gateway's.
func NewID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// Store holds the APIs.
type Store struct {
	kv        jetstream.KeyValue
	log       *slog.Logger
	stopWatch func()

	mu   sync.RWMutex
	apis map[string]*entry
}

type entry struct {
	api *API // nil once deleted
	rev uint64
}

// Open loads the APIs and follows changes.
func Open(ctx context.Context, kv jetstream.KeyValue, log *slog.Logger) (*Store, error) {
	s := &Store{kv: kv, log: log, apis: map[string]*entry{}}
	var err error
	if s.stopWatch, err = store.FollowJSON(ctx, kv, log, s.set); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Store) set(id string, api *API, rev uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.apis[id]; ok && cur.rev >= rev {
		return
	}
	s.apis[id] = &entry{api: api, rev: rev}
}

// Close stops the watch.
func (s *Store) Close() { s.stopWatch() }

// Get returns an API (a shared read-only value).
func (s *Store) Get(id string) (*API, error) {
	s.mu.RLock()
	e := s.apis[id]
	s.mu.RUnlock()
	if e == nil || e.api == nil {
		return nil, function.Errorf(ErrNotFound, "Invalid API identifier specified %s", id)
	}
	return e.api, nil
}

// List returns the APIs by id.
func (s *Store) List() []*API {
	s.mu.RLock()
	out := make([]*API, 0, len(s.apis))
	for _, e := range s.apis {
		if e.api != nil {
			out = append(out, e.api)
		}
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Create stores a new API.
func (s *Store) Create(ctx context.Context, api *API) error {
	data, _ := json.Marshal(api)
	rev, err := s.kv.Create(ctx, api.ID, data)
	if err != nil {
		return fmt.Errorf("store api: %w", err)
	}
	s.set(api.ID, api, rev)
	return nil
}

// Update applies change to a copy of the API and stores it.
func (s *Store) Update(ctx context.Context, id string, change func(*API) error) (*API, error) {
	for {
		s.mu.RLock()
		e := s.apis[id]
		s.mu.RUnlock()
		if e == nil || e.api == nil {
			return nil, function.Errorf(ErrNotFound, "Invalid API identifier specified %s", id)
		}
		next := clone(e.api)
		if err := change(next); err != nil {
			return nil, err
		}
		data, _ := json.Marshal(next)
		rev, err := s.kv.Update(ctx, id, data, e.rev)
		if errors.Is(err, jetstream.ErrKeyExists) {
			continue // changed meanwhile: apply to the newer one
		}
		if err != nil {
			return nil, fmt.Errorf("store api: %w", err)
		}
		s.set(id, next, rev)
		return next, nil
	}
}

// Delete removes an API.
func (s *Store) Delete(ctx context.Context, id string) error {
	s.mu.RLock()
	e := s.apis[id]
	s.mu.RUnlock()
	if e == nil || e.api == nil {
		return function.Errorf(ErrNotFound, "Invalid API identifier specified %s", id)
	}
	if err := s.kv.Delete(ctx, id, jetstream.LastRevision(e.rev)); err != nil {
		return fmt.Errorf("delete api: %w", err)
	}
	s.set(id, nil, e.rev+1)
	return nil
}

func clone(a *API) *API {
	b, _ := json.Marshal(a)
	out := new(API)
	_ = json.Unmarshal(b, out)
	if out.Integrations == nil {
		out.Integrations = map[string]*Integration{}
	}
	if out.Routes == nil {
		out.Routes = map[string]*Route{}
	}
	if out.Stages == nil {
		out.Stages = map[string]*Stage{}
	}
	return out
}

// ValidateRouteKey checks "$default" or "METHOD /path" with {param} and
// a final {greedy+} segment.
func ValidateRouteKey(key string) error {
	if key == "$default" {
		return nil
	}
	method, path, ok := strings.Cut(key, " ")
	if !ok || !strings.HasPrefix(path, "/") {
		return function.Errorf(ErrInvalid, "Invalid route key: %s", key)
	}
	switch method {
	case "ANY", "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS":
	default:
		return function.Errorf(ErrInvalid, "Invalid route key method: %s", method)
	}
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for i, seg := range segs {
		if strings.HasPrefix(seg, "{") {
			if !strings.HasSuffix(seg, "}") || len(seg) < 3 {
				return function.Errorf(ErrInvalid, "Invalid path parameter in route key: %s", key)
			}
			if strings.HasSuffix(seg, "+}") && i != len(segs)-1 {
				return function.Errorf(ErrInvalid, "a greedy path variable must be the last segment: %s", key)
			}
		}
	}
	return nil
}

// Match finds the route for a request with API Gateway's precedence: an
// exact path before one with parameters before a greedy one, a route with
// the method before ANY, and $default last.
func Match(api *API, method, path string) (*Route, map[string]string) {
	reqSegs := strings.Split(strings.Trim(path, "/"), "/")
	var best *Route
	var bestParams map[string]string
	var bestScore [3]int
	for _, r := range api.Routes {
		if r.RouteKey == "$default" {
			continue
		}
		m, p, _ := strings.Cut(r.RouteKey, " ")
		if m != "ANY" && m != method {
			continue
		}
		params, score, ok := matchPath(strings.Split(strings.Trim(p, "/"), "/"), reqSegs)
		if !ok {
			continue
		}
		any := 0
		if m == "ANY" {
			any = 1
		}
		s := [3]int{score[0], score[1], any}
		if best == nil || less(s, bestScore) || (s == bestScore && r.RouteKey < best.RouteKey) {
			best, bestParams, bestScore = r, params, s
		}
	}
	if best != nil {
		return best, bestParams
	}
	for _, r := range api.Routes {
		if r.RouteKey == "$default" {
			return r, nil
		}
	}
	return nil, nil
}

func less(a, b [3]int) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

// matchPath matches route segments to request segments. score is
// (greedy, parameters): lower is more specific.
func matchPath(route, req []string) (map[string]string, [2]int, bool) {
	params := map[string]string{}
	var score [2]int
	for i, seg := range route {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "+}") {
			if i >= len(req) || (len(req) == 1 && req[0] == "") {
				return nil, score, false
			}
			params[seg[1:len(seg)-2]] = strings.Join(req[i:], "/")
			score[0] = 1
			return params, score, true
		}
		if i >= len(req) {
			return nil, score, false
		}
		if strings.HasPrefix(seg, "{") {
			if req[i] == "" {
				return nil, score, false
			}
			params[seg[1:len(seg)-1]] = req[i]
			score[1]++
			continue
		}
		if seg != req[i] {
			return nil, score, false
		}
	}
	if len(route) != len(req) {
		return nil, score, false
	}
	return params, score, true
}
