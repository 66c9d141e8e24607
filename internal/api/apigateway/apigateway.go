// Package apigateway speaks API Gateway v2's REST-JSON API for HTTP APIs:
// APIs (with quick create), integrations, routes and stages.
package apigateway

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/stratus-faas/stratus/internal/auth"
	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/httpapi"
	"github.com/stratus-faas/stratus/internal/registry"
	"github.com/stratus-faas/stratus/internal/store"
)

// API serves /v2/apis.
type API struct {
	store   *httpapi.Store
	reg     *registry.Registry
	log     *slog.Logger
	gateway string // public base URL of the HTTP listener
	region  string
	auth    auth.Authorizer
}

// New returns the API; authz decides what each caller may do (nil allows
// nothing).
func New(store *httpapi.Store, reg *registry.Registry, log *slog.Logger, gateway, region string, authz auth.Authorizer) *API {
	return &API{store: store, reg: reg, log: log, gateway: strings.TrimRight(gateway, "/"), region: region, auth: authz}
}

// Endpoint is the address of an HTTP API: a path on the HTTP listener.
func Endpoint(gateway, id string) string { return strings.TrimRight(gateway, "/") + "/api/" + id }

// Register adds the routes.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /v2/apis", a.h(a.createAPI))
	mux.HandleFunc("GET /v2/apis", a.h(a.getAPIs))
	mux.HandleFunc("GET /v2/apis/{api}", a.h(a.getAPI))
	mux.HandleFunc("PATCH /v2/apis/{api}", a.h(a.updateAPI))
	mux.HandleFunc("DELETE /v2/apis/{api}", a.h(a.deleteAPI))
	mux.HandleFunc("DELETE /v2/apis/{api}/cors", a.h(a.deleteCors))
	mux.HandleFunc("POST /v2/apis/{api}/integrations", a.h(a.createIntegration))
	mux.HandleFunc("GET /v2/apis/{api}/integrations", a.h(a.getIntegrations))
	mux.HandleFunc("GET /v2/apis/{api}/integrations/{id}", a.h(a.getIntegration))
	mux.HandleFunc("PATCH /v2/apis/{api}/integrations/{id}", a.h(a.updateIntegration))
	mux.HandleFunc("DELETE /v2/apis/{api}/integrations/{id}", a.h(a.deleteIntegration))
	mux.HandleFunc("POST /v2/apis/{api}/routes", a.h(a.createRoute))
	mux.HandleFunc("GET /v2/apis/{api}/routes", a.h(a.getRoutes))
	mux.HandleFunc("GET /v2/apis/{api}/routes/{id}", a.h(a.getRoute))
	mux.HandleFunc("PATCH /v2/apis/{api}/routes/{id}", a.h(a.updateRoute))
	mux.HandleFunc("DELETE /v2/apis/{api}/routes/{id}", a.h(a.deleteRoute))
	a.registerStages(mux)
}

// Wire errors: the type in X-Amzn-ErrorType, {"message": ...} in the body.
// wireError is an API Gateway error as its clients decode it.
type wireError struct {
	Status  int
	Code    string
	Message string
}

// toWire maps every error of the layers below to API Gateway's error. It
// is the one place that does.
func (a *API) toWire(err error) wireError {
	msg := function.Message(err)
	var denied *auth.Denied
	switch {
	case errors.As(err, &denied):
		return wireError{403, "AccessDeniedException", denied.Error()}
	case errors.Is(err, httpapi.ErrNotFound):
		return wireError{404, "NotFoundException", msg}
	case errors.Is(err, httpapi.ErrInvalid), errors.Is(err, function.ErrInvalid):
		return wireError{400, "BadRequestException", msg}
	case errors.Is(err, httpapi.ErrConflict):
		return wireError{409, "ConflictException", msg}
	case store.Unavailable(err):
		return wireError{503, "ServiceUnavailableException", store.Explain(err)}
	}
	a.log.Error("apigateway", "err", err)
	return wireError{500, "InternalServerErrorException", msg}
}

// h adapts a handler that returns its error, so that errors reach the
// wire in one place.
//
// API Gateway's IAM actions are its HTTP methods (apigateway:POST) on the
// ARN of the path (arn:aws:apigateway:REGION::/apis/ID/routes).
func (a *API) h(fn func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		action, resource := "apigateway:"+r.Method, "arn:aws:apigateway:"+a.region+"::"+r.URL.Path
		err := auth.Ask(r.Context(), a.auth, action, resource)
		if err == nil {
			err = fn(w, r)
		}
		if err != nil {
			e := a.toWire(err)
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Amzn-ErrorType", e.Code)
			w.WriteHeader(e.Status)
			_ = json.NewEncoder(w).Encode(map[string]string{"message": e.Message})
		}
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func decode(r *http.Request, v any) error {
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return function.Errorf(httpapi.ErrInvalid, "%v", err)
	}
	if len(b) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return function.Errorf(httpapi.ErrInvalid, "Invalid request body: %v", err)
	}
	return nil
}

const timeFormat = "2006-01-02T15:04:05Z"

func (a *API) apiOut(api *httpapi.API) map[string]any {
	out := map[string]any{
		"apiId":                     api.ID,
		"apiEndpoint":               Endpoint(a.gateway, api.ID),
		"name":                      api.Name,
		"description":               api.Description,
		"protocolType":              "HTTP",
		"routeSelectionExpression":  "$request.method $request.path",
		"apiKeySelectionExpression": "$request.header.x-api-key",
		"createdDate":               api.Created.UTC().Format(timeFormat),
		"disableExecuteApiEndpoint": false,
	}
	if api.Cors != nil {
		out["corsConfiguration"] = corsOut(api.Cors)
	}
	return out
}

func (a *API) deleteCors(w http.ResponseWriter, r *http.Request) error {
	if _, err := a.store.Update(r.Context(), r.PathValue("api"), func(api *httpapi.API) error {
		api.Cors = nil
		return nil
	}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type apiInput struct {
	Name              *string   `json:"name"`
	Description       *string   `json:"description"`
	ProtocolType      string    `json:"protocolType"`
	Target            string    `json:"target"`
	RouteKey          string    `json:"routeKey"`
	CorsConfiguration *corsWire `json:"corsConfiguration"`
}

// corsWire is API Gateway's CorsConfiguration.
type corsWire struct {
	AllowCredentials *bool    `json:"allowCredentials,omitempty"`
	AllowHeaders     []string `json:"allowHeaders,omitempty"`
	AllowMethods     []string `json:"allowMethods,omitempty"`
	AllowOrigins     []string `json:"allowOrigins,omitempty"`
	ExposeHeaders    []string `json:"exposeHeaders,omitempty"`
	MaxAge           *int     `json:"maxAge,omitempty"`
}

func (c *corsWire) cors() (*function.Cors, error) {
	out := &function.Cors{AllowHeaders: c.AllowHeaders, AllowMethods: c.AllowMethods, AllowOrigins: c.AllowOrigins, ExposeHeaders: c.ExposeHeaders}
	if c.AllowCredentials != nil {
		out.AllowCredentials = *c.AllowCredentials
	}
	if c.MaxAge != nil {
		if *c.MaxAge < -1 || *c.MaxAge > 86400 {
			return nil, function.Errorf(httpapi.ErrInvalid, "maxAge must be between -1 and 86400")
		}
		out.MaxAge = max(*c.MaxAge, 0)
	}
	if out.AllowCredentials && slices.Contains(out.AllowOrigins, "*") {
		return nil, function.Errorf(httpapi.ErrInvalid, "allowCredentials is not supported with the allowOrigins value '*'")
	}
	return out, nil
}

func corsOut(c *function.Cors) *corsWire {
	if c == nil {
		return nil
	}
	return &corsWire{AllowCredentials: &c.AllowCredentials, AllowHeaders: c.AllowHeaders, AllowMethods: c.AllowMethods,
		AllowOrigins: c.AllowOrigins, ExposeHeaders: c.ExposeHeaders, MaxAge: &c.MaxAge}
}

func (a *API) createAPI(w http.ResponseWriter, r *http.Request) error {
	var in apiInput
	if err := decode(r, &in); err != nil {
		return err
	}
	if in.Name == nil || *in.Name == "" || len(*in.Name) > 128 {
		return function.Errorf(httpapi.ErrInvalid, "name is required (1 to 128 characters)")
	}
	if in.ProtocolType != "HTTP" {
		return function.Errorf(httpapi.ErrInvalid, "protocolType %q is not supported; Stratus serves HTTP APIs", in.ProtocolType)
	}
	now := time.Now()
	api := &httpapi.API{ID: httpapi.NewID(), Name: *in.Name, Created: now,
		Integrations: map[string]*httpapi.Integration{}, Routes: map[string]*httpapi.Route{}, Stages: map[string]*httpapi.Stage{}}
	if in.Description != nil {
		api.Description = *in.Description
	}
	if in.CorsConfiguration != nil {
		var err error
		if api.Cors, err = in.CorsConfiguration.cors(); err != nil {
			return err
		}
	}
	if in.Target != "" {
		// Quick create: an integration to the target, a route to it and the $default stage.
		if err := a.checkTarget(in.Target); err != nil {
			return err
		}
		key := in.RouteKey
		if key == "" {
			key = "$default"
		}
		if err := httpapi.ValidateRouteKey(key); err != nil {
			return err
		}
		integ := &httpapi.Integration{ID: httpapi.NewID(), Type: "AWS_PROXY", URI: in.Target, PayloadFormatVersion: "2.0", TimeoutInMillis: 30000}
		api.Integrations[integ.ID] = integ
		route := &httpapi.Route{ID: httpapi.NewID(), RouteKey: key, Target: "integrations/" + integ.ID}
		api.Routes[route.ID] = route
		api.Stages["$default"] = &httpapi.Stage{Name: "$default", AutoDeploy: true, Created: now}
	} else if in.RouteKey != "" {
		return function.Errorf(httpapi.ErrInvalid, "routeKey is only used with target (quick create)")
	}
	if err := a.store.Create(r.Context(), api); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, a.apiOut(api))
	return nil
}

// checkTarget verifies that an integration URI names an existing function.
func (a *API) checkTarget(uri string) error {
	ref := httpapi.FunctionRef(uri)
	name, q, err := function.ParseRef(ref)
	if err != nil {
		return function.Errorf(httpapi.ErrInvalid, "Invalid integration URI specified: %s", uri)
	}
	if _, err := a.reg.Resolve(name, q); err != nil {
		return function.Errorf(httpapi.ErrInvalid, "Integration target %s is not a function", uri)
	}
	return nil
}

func (a *API) getAPIs(w http.ResponseWriter, r *http.Request) error {
	all := a.store.List()
	items := make([]map[string]any, 0, len(all))
	start, limit := page(r, len(all))
	for _, api := range all[start:min(len(all), start+limit)] {
		items = append(items, a.apiOut(api))
	}
	out := map[string]any{"items": items}
	if start+limit < len(all) {
		out["nextToken"] = strconv.Itoa(start + limit)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// page reads nextToken and maxResults.
func page(r *http.Request, n int) (start, limit int) {
	limit = 100
	if m, err := strconv.Atoi(r.URL.Query().Get("maxResults")); err == nil && m > 0 {
		limit = m
	}
	if t, err := strconv.Atoi(r.URL.Query().Get("nextToken")); err == nil && t >= 0 && t <= n {
		start = t
	}
	return start, limit
}

func (a *API) getAPI(w http.ResponseWriter, r *http.Request) error {
	api, err := a.store.Get(r.PathValue("api"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.apiOut(api))
	return nil
}

func (a *API) updateAPI(w http.ResponseWriter, r *http.Request) error {
	var in apiInput
	if err := decode(r, &in); err != nil {
		return err
	}
	api, err := a.store.Update(r.Context(), r.PathValue("api"), func(api *httpapi.API) error {
		if in.Name != nil {
			if *in.Name == "" {
				return function.Errorf(httpapi.ErrInvalid, "name must not be empty")
			}
			api.Name = *in.Name
		}
		if in.Description != nil {
			api.Description = *in.Description
		}
		if in.CorsConfiguration != nil {
			c, err := in.CorsConfiguration.cors()
			if err != nil {
				return err
			}
			api.Cors = c
		}
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.apiOut(api))
	return nil
}

func (a *API) deleteAPI(w http.ResponseWriter, r *http.Request) error {
	if err := a.store.Delete(r.Context(), r.PathValue("api")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func integrationOut(i *httpapi.Integration) map[string]any {
	return map[string]any{
		"integrationId":        i.ID,
		"integrationType":      i.Type,
		"integrationUri":       i.URI,
		"integrationMethod":    "POST",
		"payloadFormatVersion": i.PayloadFormatVersion,
		"timeoutInMillis":      i.TimeoutInMillis,
		"connectionType":       "INTERNET",
		"description":          i.Description,
	}
}

type integrationInput struct {
	IntegrationType      *string `json:"integrationType"`
	IntegrationURI       *string `json:"integrationUri"`
	PayloadFormatVersion *string `json:"payloadFormatVersion"`
	TimeoutInMillis      *int    `json:"timeoutInMillis"`
	Description          *string `json:"description"`
}

func (a *API) applyIntegration(i *httpapi.Integration, in integrationInput) error {
	if in.IntegrationType != nil {
		i.Type = *in.IntegrationType
	}
	if in.IntegrationURI != nil {
		i.URI = *in.IntegrationURI
	}
	if in.PayloadFormatVersion != nil {
		i.PayloadFormatVersion = *in.PayloadFormatVersion
	}
	if in.TimeoutInMillis != nil {
		i.TimeoutInMillis = *in.TimeoutInMillis
	}
	if in.Description != nil {
		i.Description = *in.Description
	}
	if i.Type != "AWS_PROXY" {
		return function.Errorf(httpapi.ErrInvalid, "integrationType %q is not supported; use AWS_PROXY to a Lambda function", i.Type)
	}
	if i.PayloadFormatVersion == "" {
		i.PayloadFormatVersion = "2.0"
	}
	if i.PayloadFormatVersion != "1.0" && i.PayloadFormatVersion != "2.0" {
		return function.Errorf(httpapi.ErrInvalid, "payloadFormatVersion must be 1.0 or 2.0")
	}
	if i.TimeoutInMillis == 0 {
		i.TimeoutInMillis = 30000
	}
	if i.TimeoutInMillis < 50 || i.TimeoutInMillis > 30000 {
		return function.Errorf(httpapi.ErrInvalid, "timeoutInMillis must be between 50 and 30000")
	}
	return a.checkTarget(i.URI)
}

func (a *API) createIntegration(w http.ResponseWriter, r *http.Request) error {
	var in integrationInput
	if err := decode(r, &in); err != nil {
		return err
	}
	integ := &httpapi.Integration{ID: httpapi.NewID()}
	if err := a.applyIntegration(integ, in); err != nil {
		return err
	}
	if _, err := a.store.Update(r.Context(), r.PathValue("api"), func(api *httpapi.API) error {
		api.Integrations[integ.ID] = integ
		return nil
	}); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, integrationOut(integ))
	return nil
}

func (a *API) updateIntegration(w http.ResponseWriter, r *http.Request) error {
	var in integrationInput
	if err := decode(r, &in); err != nil {
		return err
	}
	var out *httpapi.Integration
	_, err := a.store.Update(r.Context(), r.PathValue("api"), func(api *httpapi.API) error {
		i := api.Integrations[r.PathValue("id")]
		if i == nil {
			return function.Errorf(httpapi.ErrNotFound, "Invalid Integration identifier specified")
		}
		out = i
		return a.applyIntegration(i, in)
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, integrationOut(out))
	return nil
}

func (a *API) getIntegrations(w http.ResponseWriter, r *http.Request) error {
	api, err := a.store.Get(r.PathValue("api"))
	if err != nil {
		return err
	}
	items := []map[string]any{}
	for _, id := range sortedKeys(api.Integrations) {
		items = append(items, integrationOut(api.Integrations[id]))
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
	return nil
}

func (a *API) getIntegration(w http.ResponseWriter, r *http.Request) error {
	api, err := a.store.Get(r.PathValue("api"))
	if err != nil {
		return err
	}
	i := api.Integrations[r.PathValue("id")]
	if i == nil {
		return function.Errorf(httpapi.ErrNotFound, "Invalid Integration identifier specified")
	}
	writeJSON(w, http.StatusOK, integrationOut(i))
	return nil
}

func (a *API) deleteIntegration(w http.ResponseWriter, r *http.Request) error {
	_, err := a.store.Update(r.Context(), r.PathValue("api"), func(api *httpapi.API) error {
		id := r.PathValue("id")
		if api.Integrations[id] == nil {
			return function.Errorf(httpapi.ErrNotFound, "Invalid Integration identifier specified")
		}
		for _, route := range api.Routes {
			if route.Target == "integrations/"+id {
				return function.Errorf(httpapi.ErrConflict, "Cannot delete an integration that a route (%s) uses", route.RouteKey)
			}
		}
		delete(api.Integrations, id)
		return nil
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func routeOut(rt *httpapi.Route) map[string]any {
	out := map[string]any{"routeId": rt.ID, "routeKey": rt.RouteKey, "authorizationType": "NONE", "apiKeyRequired": false}
	if rt.Target != "" {
		out["target"] = rt.Target
	}
	return out
}

type routeInput struct {
	RouteKey          *string `json:"routeKey"`
	Target            *string `json:"target"`
	AuthorizationType *string `json:"authorizationType"`
}

func applyRoute(api *httpapi.API, rt *httpapi.Route, in routeInput) error {
	if in.RouteKey != nil {
		rt.RouteKey = *in.RouteKey
	}
	if in.Target != nil {
		rt.Target = *in.Target
	}
	if in.AuthorizationType != nil && *in.AuthorizationType != "NONE" {
		return function.Errorf(httpapi.ErrInvalid, "authorizationType %s is not supported yet; use NONE", *in.AuthorizationType)
	}
	if err := httpapi.ValidateRouteKey(rt.RouteKey); err != nil {
		return err
	}
	if rt.Target != "" {
		id, ok := strings.CutPrefix(rt.Target, "integrations/")
		if !ok || api.Integrations[id] == nil {
			return function.Errorf(httpapi.ErrInvalid, "Invalid target %q: use integrations/ID of an existing integration", rt.Target)
		}
	}
	for _, other := range api.Routes {
		if other.ID != rt.ID && other.RouteKey == rt.RouteKey {
			return function.Errorf(httpapi.ErrConflict, "Route with key %s already exists for this API", rt.RouteKey)
		}
	}
	return nil
}

func (a *API) createRoute(w http.ResponseWriter, r *http.Request) error {
	var in routeInput
	if err := decode(r, &in); err != nil {
		return err
	}
	rt := &httpapi.Route{ID: httpapi.NewID()}
	if in.RouteKey == nil {
		return function.Errorf(httpapi.ErrInvalid, "routeKey is required")
	}
	if _, err := a.store.Update(r.Context(), r.PathValue("api"), func(api *httpapi.API) error {
		if err := applyRoute(api, rt, in); err != nil {
			return err
		}
		api.Routes[rt.ID] = rt
		return nil
	}); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, routeOut(rt))
	return nil
}

func (a *API) updateRoute(w http.ResponseWriter, r *http.Request) error {
	var in routeInput
	if err := decode(r, &in); err != nil {
		return err
	}
	var out *httpapi.Route
	_, err := a.store.Update(r.Context(), r.PathValue("api"), func(api *httpapi.API) error {
		rt := api.Routes[r.PathValue("id")]
		if rt == nil {
			return function.Errorf(httpapi.ErrNotFound, "Invalid Route identifier specified")
		}
		out = rt
		return applyRoute(api, rt, in)
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, routeOut(out))
	return nil
}

func (a *API) getRoutes(w http.ResponseWriter, r *http.Request) error {
	api, err := a.store.Get(r.PathValue("api"))
	if err != nil {
		return err
	}
	items := []map[string]any{}
	for _, id := range sortedKeys(api.Routes) {
		items = append(items, routeOut(api.Routes[id]))
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
	return nil
}

func (a *API) getRoute(w http.ResponseWriter, r *http.Request) error {
	api, err := a.store.Get(r.PathValue("api"))
	if err != nil {
		return err
	}
	rt := api.Routes[r.PathValue("id")]
	if rt == nil {
		return function.Errorf(httpapi.ErrNotFound, "Invalid Route identifier specified")
	}
	writeJSON(w, http.StatusOK, routeOut(rt))
	return nil
}

func (a *API) deleteRoute(w http.ResponseWriter, r *http.Request) error {
	_, err := a.store.Update(r.Context(), r.PathValue("api"), func(api *httpapi.API) error {
		if api.Routes[r.PathValue("id")] == nil {
			return function.Errorf(httpapi.ErrNotFound, "Invalid Route identifier specified")
		}
		delete(api.Routes, r.PathValue("id"))
		return nil
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
