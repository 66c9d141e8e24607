// Package gateway serves HTTP triggers on the HTTP listener: function URLs
// and API Gateway HTTP APIs, each turning a request into Lambda's HTTP
// event (payload format 2.0, or 1.0 where an integration asks for it) and
// the function's answer back into an HTTP response.
package gateway

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/stratus-faas/stratus/internal/auth"
	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/httpapi"
	"github.com/stratus-faas/stratus/internal/invoke"
	"github.com/stratus-faas/stratus/internal/outcome"
	"github.com/stratus-faas/stratus/internal/registry"
)

// Gateway routes HTTP requests to functions.
type Gateway struct {
	reg  *registry.Registry
	apis *httpapi.Store
	inv  *invoke.Invoker
	log  *slog.Logger
	now  func() time.Time
	opts Options
}

// Options configure the gateway.
type Options struct {
	Region string
	// Trust decides who may invoke through a trigger; nil lets nothing in.
	Trust Trust
}

// Trust checks signatures of AWS_IAM function URLs and evaluates
// functions' resource policies.
type Trust interface {
	Check(r *http.Request, region string, services []string, body func() ([]byte, error)) (*auth.Principal, error)
	AuthorizeWith(ctx context.Context, resourcePolicy *auth.Policy, action, resource string, conds ...auth.Cond) error
}

// New returns a gateway.
func New(reg *registry.Registry, apis *httpapi.Store, inv *invoke.Invoker, log *slog.Logger, opts Options) *Gateway {
	return &Gateway{reg: reg, apis: apis, inv: inv, log: log, now: time.Now, opts: opts}
}

// policy is the compiled resource policy of name:qualifier, or nil.
func (g *Gateway) policy(name, qualifier string) *auth.Policy {
	return g.reg.CompiledPolicy(name, qualifier)
}

// urlAllowed says whether a function URL's request may invoke, as Lambda
// decides: AWS_IAM, a signed request whose caller is allowed
// lambda:InvokeFunctionUrl (by identity or the function's policy); NONE,
// the function's policy granting anyone both lambda:InvokeFunctionUrl
// and lambda:InvokeFunction (the latter via the URL).
func (g *Gateway) urlAllowed(r *http.Request, u *function.URLConfig, body []byte) (*auth.Principal, bool) {
	if g.opts.Trust == nil {
		return nil, false
	}
	arn := function.ARN(g.opts.Region, u.Function, u.Qualifier)
	pol := g.policy(u.Function, u.Qualifier)
	authType := auth.Cond{Key: "lambda:FunctionUrlAuthType", Values: []string{u.AuthType}}
	if u.AuthType == function.URLAuthIAM {
		p, err := g.opts.Trust.Check(r, g.opts.Region, []string{"lambda"}, func() ([]byte, error) { return body, nil })
		if err != nil {
			return nil, false
		}
		ctx := auth.WithPrincipal(r.Context(), p)
		return p, g.opts.Trust.AuthorizeWith(ctx, pol, "lambda:InvokeFunctionUrl", arn, authType) == nil
	}
	return nil, auth.AllowsAnyone(pol, "lambda:InvokeFunctionUrl", arn, authType) &&
		auth.AllowsAnyone(pol, "lambda:InvokeFunction", arn, auth.Cond{Key: "lambda:InvokedViaFunctionUrl", Values: []string{"true"}})
}

// apiAllowed says whether an HTTP API may invoke the function of its
// integration: the function's policy must let apigateway.amazonaws.com
// in, for this API's source ARN, as on AWS.
func (g *Gateway) apiAllowed(apiID string, route *httpapi.Route, ref string) bool {
	name, q, err := function.ParseRef(ref)
	if err != nil {
		return false
	}
	key := "$default"
	if route.RouteKey != "$default" {
		method, path, _ := strings.Cut(route.RouteKey, " ")
		if method == "ANY" {
			method = "*"
		}
		key = method + path
	} else {
		key = "*/$default"
	}
	source := "arn:aws:execute-api:" + g.opts.Region + ":" + function.AccountID + ":" + apiID + "/$default/" + strings.TrimPrefix(key, "/")
	return auth.AllowsService(g.policy(name, q), "apigateway.amazonaws.com", "lambda:InvokeFunction", function.ARN(g.opts.Region, name, q),
		auth.Cond{Key: "aws:SourceArn", Values: []string{source}})
}

// Server wraps the gateway in an HTTP server whose timeouts keep slow or
// stalled clients from holding instances, speaking HTTP/1.1 and HTTP/2
// cleartext.
func (g *Gateway) Server() *http.Server {
	srv := &http.Server{
		Handler:           g,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second, // the body; bounded to 6 MB anyway
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		Protocols:         new(http.Protocols),
	}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	return srv
}

// ServeHTTP finds the function URL a request is for: by path
// (/url/ID/...) or by host (ID.lambda-url.REGION...).
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	host, _, _ := strings.Cut(r.Host, ".")
	switch {
	case strings.Contains(r.Host, ".execute-api."):
		g.serveAPI(w, r, host, path)
		return
	case strings.Contains(r.Host, ".lambda-url."):
		g.serveURLByID(w, r, host, path)
		return
	}
	if rest, ok := strings.CutPrefix(path, "/api/"); ok {
		id, sub, _ := strings.Cut(rest, "/")
		g.serveAPI(w, r, id, "/"+sub)
		return
	}
	if rest, ok := strings.CutPrefix(path, "/url/"); ok {
		id, sub, _ := strings.Cut(rest, "/")
		g.serveURLByID(w, r, id, "/"+sub)
		return
	}
	writeMessage(w, http.StatusNotFound, urlStyle, "Not Found")
}

func (g *Gateway) serveURLByID(w http.ResponseWriter, r *http.Request, id, path string) {
	u := g.reg.URLByID(id)
	if u == nil {
		writeMessage(w, http.StatusNotFound, urlStyle, "Not Found")
		return
	}
	g.serveURL(w, r, u, path)
}

// serveAPI routes a request of an HTTP API.
func (g *Gateway) serveAPI(w http.ResponseWriter, r *http.Request, id, path string) {
	api, err := g.apis.Get(id)
	if err != nil {
		writeMessage(w, http.StatusNotFound, apiStyle, "Not Found")
		return
	}
	// A named stage is the path's first segment; the event's raw path
	// keeps it, as API Gateway's does, and routes match what follows.
	rawPath := path
	stage, path := api.StageFor(path)
	if stage == nil {
		writeMessage(w, http.StatusNotFound, apiStyle, "Not Found")
		return
	}
	if api = api.Served(stage); api == nil {
		writeMessage(w, http.StatusNotFound, apiStyle, "Not Found")
		return
	}
	// With a CorsConfiguration, API Gateway answers preflights itself,
	// whatever the routes, and adds the headers to every answer.
	if api.Cors != nil {
		if preflight(w, r, api.Cors) {
			return
		}
		corsHeaders(w, r, api.Cors)
	}
	route, params := httpapi.Match(api, r.Method, path)
	if route == nil {
		writeMessage(w, http.StatusNotFound, apiStyle, "Not Found")
		return
	}
	integID, _ := strings.CutPrefix(route.Target, "integrations/")
	integ := api.Integrations[integID]
	if integ == nil {
		writeMessage(w, http.StatusNotFound, apiStyle, "Not Found")
		return
	}
	body, err := readBody(r)
	if err != nil {
		if errors.Is(err, errTooLarge) {
			writeMessage(w, http.StatusRequestEntityTooLarge, apiStyle, "Request Entity Too Large")
			return
		}
		writeMessage(w, http.StatusBadRequest, apiStyle, "Bad Request")
		return
	}
	var ev any
	if integ.PayloadFormatVersion == "1.0" {
		ev = g.eventV1(r, api.ID, stage, route, params, rawPath, body)
	} else {
		e := g.eventV2(r, rawPath, body)
		e.RequestContext.Stage = stage.Name
		if len(stage.Variables) > 0 {
			e.StageVariables = stage.Variables
		}
		e.RouteKey, e.RequestContext.RouteKey = route.RouteKey, route.RouteKey
		e.PathParameters = params
		e.RequestContext.AccountID = function.AccountID
		e.RequestContext.APIID, e.RequestContext.DomainPrefix = api.ID, api.ID
		ev = e
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		writeMessage(w, http.StatusInternalServerError, apiStyle, "Internal Server Error")
		return
	}
	if !g.apiAllowed(api.ID, route, httpapi.FunctionRef(integ.URI)) {
		// What API Gateway answers when the function's policy does not
		// let it invoke.
		writeMessage(w, http.StatusInternalServerError, apiStyle, "Internal Server Error")
		return
	}
	// API Gateway gives up on the integration after its timeout (at most
	// 30 s); the invocation itself still ends within the function's.
	type result struct {
		resp *invoke.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := g.inv.Invoke(r.Context(), invoke.Request{FunctionName: httpapi.FunctionRef(integ.URI), Payload: payload})
		done <- result{resp, err}
	}()
	timer := time.NewTimer(time.Duration(max(integ.TimeoutInMillis, 50)) * time.Millisecond)
	defer timer.Stop()
	select {
	case res := <-done:
		g.respond(w, res.resp, res.err, apiStyle, integ.PayloadFormatVersion == "1.0")
	case <-timer.C:
		writeMessage(w, http.StatusGatewayTimeout, apiStyle, "Endpoint request timed out")
	}
}

// Error bodies: function URLs say {"Message": ...}, HTTP APIs {"message": ...}.
type style string

const (
	urlStyle style = "Message"
	apiStyle style = "message"
)

func (g *Gateway) serveURL(w http.ResponseWriter, r *http.Request, u *function.URLConfig, path string) {
	if u.Cors != nil && preflight(w, r, u.Cors) {
		return
	}
	if u.Cors != nil {
		corsHeaders(w, r, u.Cors)
	}
	body, err := readBody(r)
	if err != nil {
		if errors.Is(err, errTooLarge) {
			writeMessage(w, http.StatusRequestEntityTooLarge, urlStyle, "Request Entity Too Large")
			return
		}
		writeMessage(w, http.StatusBadRequest, urlStyle, "Bad Request")
		return
	}
	caller, ok := g.urlAllowed(r, u, body)
	if !ok {
		writeMessage(w, http.StatusForbidden, urlStyle, "Forbidden")
		return
	}
	ev := g.eventV2(r, path, body)
	ev.RequestContext.APIID, ev.RequestContext.DomainPrefix = u.ID, u.ID
	if caller != nil {
		ev.RequestContext.Authorizer = &Authorizer{IAM: &IAMCaller{AccessKey: caller.AccessKey, AccountID: auth.Account,
			CallerID: caller.UserID, UserARN: caller.ARN, UserID: caller.UserID}}
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		writeMessage(w, http.StatusInternalServerError, urlStyle, "Internal Server Error")
		return
	}
	if u.InvokeMode == "RESPONSE_STREAM" {
		sink := &urlStream{w: w, rc: http.NewResponseController(w)}
		resp, err := g.inv.Invoke(r.Context(), invoke.Request{FunctionName: u.Function, Qualifier: u.Qualifier, Payload: payload, Stream: sink})
		if sink.end() {
			return // streamed: an error after the first bytes ends the stream
		}
		g.respond(w, resp, err, urlStyle, false) // nothing streamed: answered as a buffered URL
		return
	}
	resp, err := g.inv.Invoke(r.Context(), invoke.Request{FunctionName: u.Function, Qualifier: u.Qualifier, Payload: payload})
	g.respond(w, resp, err, urlStyle, false)
}

// respond maps the invocation's outcome to the HTTP answer.
func (g *Gateway) respond(w http.ResponseWriter, resp *invoke.Response, err error, st style, v1 bool) {
	var thr *invoke.ThrottleError
	switch {
	case errors.As(err, &thr):
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(thr.RetryAfter.Seconds()))))
		writeMessage(w, http.StatusTooManyRequests, st, "Too Many Requests")
		return
	case errors.Is(err, registry.ErrNotFound):
		writeMessage(w, http.StatusNotFound, st, "Not Found")
		return
	case errors.Is(err, function.ErrTooLarge):
		writeMessage(w, http.StatusRequestEntityTooLarge, st, "Request Entity Too Large")
		return
	case err != nil:
		g.log.Warn("http trigger invocation failed", "err", err)
		writeMessage(w, http.StatusInternalServerError, st, "Internal Server Error")
		return
	}
	if resp.Outcome != outcome.Success {
		if resp.Outcome == outcome.Timeout {
			writeMessage(w, http.StatusGatewayTimeout, st, "Endpoint request timed out")
			return
		}
		writeMessage(w, http.StatusBadGateway, st, "Internal Server Error")
		return
	}
	out, err := parseResponse(resp.Payload, v1)
	if err != nil {
		writeMessage(w, http.StatusBadGateway, st, "Internal Server Error")
		return
	}
	h := w.Header()
	for k, v := range out.headers {
		h.Set(k, v)
	}
	for k, vs := range out.multi {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	for _, c := range out.cookies {
		h.Add("Set-Cookie", c)
	}
	h.Set("Content-Length", strconv.Itoa(len(out.body)))
	w.WriteHeader(out.status)
	_, _ = w.Write(out.body)
}

func writeMessage(w http.ResponseWriter, status int, st style, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, `{"`+string(st)+`":"`+msg+`"}`)
}

func readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, function.MaxSyncPayload+1))
	if err != nil {
		return nil, err
	}
	if len(body) > function.MaxSyncPayload {
		return nil, errTooLarge
	}
	return body, nil
}

var errTooLarge = errors.New("request body too large")

// HTTPEvent is Lambda's HTTP event, payload format 2.0.
type HTTPEvent struct {
	Version               string            `json:"version"`
	RouteKey              string            `json:"routeKey"`
	RawPath               string            `json:"rawPath"`
	RawQueryString        string            `json:"rawQueryString"`
	Cookies               []string          `json:"cookies,omitempty"`
	Headers               map[string]string `json:"headers"`
	QueryStringParameters map[string]string `json:"queryStringParameters,omitempty"`
	PathParameters        map[string]string `json:"pathParameters,omitempty"`
	StageVariables        map[string]string `json:"stageVariables,omitempty"`
	RequestContext        RequestContext    `json:"requestContext"`
	Body                  string            `json:"body,omitempty"`
	IsBase64Encoded       bool              `json:"isBase64Encoded"`
}

// RequestContext is the requestContext of a 2.0 event.
type RequestContext struct {
	AccountID    string      `json:"accountId"`
	APIID        string      `json:"apiId"`
	DomainName   string      `json:"domainName"`
	DomainPrefix string      `json:"domainPrefix"`
	HTTP         HTTPContext `json:"http"`
	RequestID    string      `json:"requestId"`
	RouteKey     string      `json:"routeKey"`
	Stage        string      `json:"stage"`
	Time         string      `json:"time"`
	TimeEpoch    int64       `json:"timeEpoch"`
	Authorizer   *Authorizer `json:"authorizer,omitempty"`
}

// Authorizer is requestContext.authorizer: the signed caller of an
// AWS_IAM function URL.
type Authorizer struct {
	IAM *IAMCaller `json:"iam"`
}

// IAMCaller is requestContext.authorizer.iam.
type IAMCaller struct {
	AccessKey string `json:"accessKey"`
	AccountID string `json:"accountId"`
	CallerID  string `json:"callerId"`
	UserARN   string `json:"userArn"`
	UserID    string `json:"userId"`
}

// HTTPContext is requestContext.http.
type HTTPContext struct {
	Method    string `json:"method"`
	Path      string `json:"path"`
	Protocol  string `json:"protocol"`
	SourceIP  string `json:"sourceIp"`
	UserAgent string `json:"userAgent"`
}

// forwarded is what API Gateway and function URLs add to a request's
// headers: the client's address appended to X-Forwarded-For, and the
// protocol and port the client reached.
func forwarded(r *http.Request) (forFor, proto, port string) {
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	forFor = ip
	if prev := r.Header.Values("X-Forwarded-For"); len(prev) > 0 {
		forFor = strings.Join(prev, ", ") + ", " + ip
	}
	proto = "http"
	if r.TLS != nil {
		proto = "https"
	}
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		_, port, _ = net.SplitHostPort(a.String())
	}
	return forFor, proto, port
}

// eventV2 builds the 2.0 event; callers fill in route and API fields.
func (g *Gateway) eventV2(r *http.Request, path string, body []byte) *HTTPEvent {
	now := g.now()
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	ev := &HTTPEvent{
		Version:        "2.0",
		RouteKey:       "$default",
		RawPath:        path,
		RawQueryString: r.URL.RawQuery,
		Headers:        map[string]string{},
		RequestContext: RequestContext{
			AccountID:  "anonymous",
			DomainName: r.Host,
			HTTP: HTTPContext{
				Method:    r.Method,
				Path:      path,
				Protocol:  r.Proto,
				SourceIP:  ip,
				UserAgent: r.UserAgent(),
			},
			RequestID: uuid.NewString(),
			RouteKey:  "$default",
			Stage:     "$default",
			Time:      now.UTC().Format("02/Jan/2006:15:04:05 -0700"),
			TimeEpoch: now.UnixMilli(),
		},
	}
	for k, vs := range r.Header {
		lk := strings.ToLower(k)
		if lk == "cookie" {
			for _, v := range vs {
				for _, c := range strings.Split(v, ";") {
					if c = strings.TrimSpace(c); c != "" {
						ev.Cookies = append(ev.Cookies, c)
					}
				}
			}
			continue
		}
		ev.Headers[lk] = strings.Join(vs, ",")
	}
	if r.Host != "" {
		ev.Headers["host"] = r.Host
	}
	ev.Headers["x-forwarded-for"], ev.Headers["x-forwarded-proto"], ev.Headers["x-forwarded-port"] = forwarded(r)
	if q, err := url.ParseQuery(r.URL.RawQuery); err == nil && len(q) > 0 {
		ev.QueryStringParameters = make(map[string]string, len(q))
		for k, vs := range q {
			ev.QueryStringParameters[k] = strings.Join(vs, ",")
		}
	}
	ev.Body, ev.IsBase64Encoded = encodeBody(r, body)
	return ev
}

// encodeBody passes text bodies as they are and others in base64.
func encodeBody(r *http.Request, body []byte) (string, bool) {
	if len(body) == 0 {
		return "", false
	}
	if isText(r.Header.Get("Content-Type")) && utf8.Valid(body) {
		return string(body), false
	}
	return base64.StdEncoding.EncodeToString(body), true
}

// isText reports content types whose bodies go to the function as text.
func isText(ct string) bool {
	ct = strings.ToLower(ct)
	if ct == "" {
		return true
	}
	for _, t := range []string{"text/", "application/json", "application/xml", "application/javascript", "application/x-www-form-urlencoded", "+json", "+xml"} {
		if strings.Contains(ct, t) {
			return true
		}
	}
	return false
}

type httpResponse struct {
	status  int
	headers map[string]string
	multi   map[string][]string
	cookies []string
	body    []byte
}

// parseResponse reads a function's answer: a response object with
// statusCode, or (format 2.0 only) any other JSON, which becomes a 200
// with that JSON.
func parseResponse(payload []byte, v1 bool) (*httpResponse, error) {
	trimmed := bytes.TrimSpace(payload)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		var r struct {
			StatusCode        *int                `json:"statusCode"`
			Headers           map[string]string   `json:"headers"`
			MultiValueHeaders map[string][]string `json:"multiValueHeaders"`
			Cookies           []string            `json:"cookies"`
			Body              *string             `json:"body"`
			IsBase64Encoded   bool                `json:"isBase64Encoded"`
		}
		if err := json.Unmarshal(trimmed, &r); err != nil {
			return nil, err
		}
		if r.StatusCode != nil {
			out := &httpResponse{status: *r.StatusCode, headers: r.Headers, multi: r.MultiValueHeaders, cookies: r.Cookies}
			if out.status < 100 || out.status > 599 {
				return nil, errors.New("statusCode out of range")
			}
			if r.Body != nil {
				out.body = []byte(*r.Body)
				if r.IsBase64Encoded {
					b, err := base64.StdEncoding.DecodeString(*r.Body)
					if err != nil {
						return nil, err
					}
					out.body = b
				}
			}
			return out, nil
		}
	}
	if v1 || len(trimmed) == 0 || !json.Valid(trimmed) {
		return nil, errors.New("function response is not an HTTP response")
	}
	return &httpResponse{status: 200, headers: map[string]string{"Content-Type": "application/json"}, body: trimmed}, nil
}

// preflight answers a CORS preflight request itself, as Lambda does.
func preflight(w http.ResponseWriter, r *http.Request, c *function.Cors) bool {
	if r.Method != http.MethodOptions || r.Header.Get("Origin") == "" || r.Header.Get("Access-Control-Request-Method") == "" {
		return false
	}
	h := w.Header()
	if origin := allowedOrigin(r.Header.Get("Origin"), c); origin != "" {
		h.Set("Access-Control-Allow-Origin", origin)
		if len(c.AllowMethods) > 0 {
			h.Set("Access-Control-Allow-Methods", strings.Join(c.AllowMethods, ","))
		}
		if len(c.AllowHeaders) > 0 {
			h.Set("Access-Control-Allow-Headers", strings.Join(c.AllowHeaders, ","))
		}
		if c.MaxAge > 0 {
			h.Set("Access-Control-Max-Age", strconv.Itoa(c.MaxAge))
		}
		if c.AllowCredentials {
			h.Set("Access-Control-Allow-Credentials", "true")
		}
	}
	h.Set("Vary", "Origin")
	w.WriteHeader(http.StatusOK)
	return true
}

func corsHeaders(w http.ResponseWriter, r *http.Request, c *function.Cors) {
	origin := allowedOrigin(r.Header.Get("Origin"), c)
	if origin == "" {
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	if len(c.ExposeHeaders) > 0 {
		h.Set("Access-Control-Expose-Headers", strings.Join(c.ExposeHeaders, ","))
	}
	if c.AllowCredentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	h.Add("Vary", "Origin")
}

// allowedOrigin is the Access-Control-Allow-Origin for origin, or "".
func allowedOrigin(origin string, c *function.Cors) string {
	if origin == "" {
		return ""
	}
	for _, o := range c.AllowOrigins {
		if o == "*" {
			if c.AllowCredentials {
				return origin // "*" is not allowed with credentials
			}
			return "*"
		}
		if strings.EqualFold(o, origin) {
			return origin
		}
	}
	return ""
}
