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
	"maps"
	"regexp"
	"slices"
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
	// Deployments are the snapshots of routes and integrations that
	// stages serve.
	Deployments map[string]*Deployment `json:"deployments,omitempty"`
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

// Stage serves a deployment: $default at the API's endpoint, any other
// under its name (ENDPOINT/NAME/...).
type Stage struct {
	Name         string            `json:"stageName"`
	AutoDeploy   bool              `json:"autoDeploy"`
	Created      time.Time         `json:"createdDate"`
	Updated      time.Time         `json:"lastUpdatedDate,omitzero"`
	DeploymentID string            `json:"deploymentId,omitempty"`
	Description  string            `json:"description,omitempty"`
	Variables    map[string]string `json:"stageVariables,omitempty"`
}

// Deployment is a snapshot of an API's routes and integrations.
type Deployment struct {
	ID           string                  `json:"deploymentId"`
	Description  string                  `json:"description,omitempty"`
	Created      time.Time               `json:"createdDate"`
	AutoDeployed bool                    `json:"autoDeployed,omitempty"`
	Routes       map[string]*Route       `json:"routes"`
	Integrations map[string]*Integration `json:"integrations"`
}

// Deploy snapshots the API's routes and integrations as a new deployment.
func (a *API) Deploy(description string, auto bool, now time.Time) *Deployment {
	snap := clone(&API{Routes: a.Routes, Integrations: a.Integrations})
	d := &Deployment{ID: NewID(), Description: description, Created: now, AutoDeployed: auto, Routes: snap.Routes, Integrations: snap.Integrations}
	if a.Deployments == nil {
		a.Deployments = map[string]*Deployment{}
	}
	a.Deployments[d.ID] = d
	return d
}

// autoDeploy deploys the API's current routes and integrations to every
// stage with AutoDeploy whose deployment differs, and forgets automatic
// deployments no stage serves any more.
func (a *API) autoDeploy(now time.Time) {
	var current *Deployment
	for _, name := range slices.Sorted(maps.Keys(a.Stages)) {
		st := a.Stages[name]
		if !st.AutoDeploy {
			continue
		}
		if d := a.Deployments[st.DeploymentID]; d != nil && sameRoutes(d, a) {
			continue
		}
		if current == nil {
			current = a.Deploy("Automatic deployment", true, now)
		}
		st.DeploymentID, st.Updated = current.ID, now
	}
	for id, d := range a.Deployments {
		if !d.AutoDeployed {
			continue
		}
		used := false
		for _, st := range a.Stages {
			used = used || st.DeploymentID == id
		}
		if !used {
			delete(a.Deployments, id)
		}
	}
}

func sameRoutes(d *Deployment, a *API) bool {
	x, _ := json.Marshal([]any{d.Routes, d.Integrations})
	y, _ := json.Marshal([]any{a.Routes, a.Integrations})
	return string(x) == string(y)
}

// Served is the API as stage serves it: the routes and integrations of
// its deployment, nil when it has none yet (API Gateway answers Not Found).
func (a *API) Served(stage *Stage) *API {
	d := a.Deployments[stage.DeploymentID]
	if d == nil {
		if stage.AutoDeploy {
			return a // stored before deployments were kept: it deploys itself
		}
		return nil
	}
	out := *a
	out.Routes, out.Integrations = d.Routes, d.Integrations
	return &out
}

// StageFor splits a request path into the stage it names and the path
// within it: the first segment when a stage of that name exists, else
// $default. The stage is nil when there is none.
func (a *API) StageFor(path string) (stage *Stage, rest string) {
	first, after, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	if st := a.Stages[first]; st != nil && first != DefaultStage {
		return st, "/" + after
	}
	return a.Stages[DefaultStage], path
}

// DefaultStage is the stage served at the API's endpoint itself.
const DefaultStage = "$default"

var (
	stageNameRE = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,128}$`)
	varNameRE   = regexp.MustCompile(`^[a-zA-Z0-9_]{1,64}$`)
	varValueRE  = regexp.MustCompile(`^[a-zA-Z0-9\-._~:/?#&=,]+$`)
)

// ValidateStage checks a stage's name and variables as API Gateway does.
func ValidateStage(st *Stage) error {
	if st.Name != DefaultStage && !stageNameRE.MatchString(st.Name) {
		return function.Errorf(ErrInvalid, "Stage name %q must be $default or 1 to 128 letters, digits, - and _", st.Name)
	}
	for k, v := range st.Variables {
		if !varNameRE.MatchString(k) {
			return function.Errorf(ErrInvalid, "Stage variable name %q must be letters, digits and _", k)
		}
		if len(v) > 2048 || !varValueRE.MatchString(v) {
			return function.Errorf(ErrInvalid, "Stage variable %s: value must be 1 to 2048 of letters, digits and -._~:/?#&=,", k)
		}
	}
	return nil
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
	api.autoDeploy(time.Now().UTC())
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
		next.autoDeploy(time.Now().UTC())
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
	if out.Deployments == nil {
		out.Deployments = map[string]*Deployment{}
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
