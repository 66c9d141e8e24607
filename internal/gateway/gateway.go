// Package gateway serves HTTP triggers on the HTTP listener: function URLs,
// each turning a request into Lambda's HTTP event (payload format 2.0) and
// the function's answer back into an HTTP response.
package gateway

import (
	"bytes"
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

	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/invoke"
	"github.com/stratus-faas/stratus/internal/registry"
)

// Gateway routes HTTP requests to functions.
type Gateway struct {
	reg *registry.Registry
	inv *invoke.Invoker
	log *slog.Logger
	now func() time.Time
}

// New returns a gateway.
func New(reg *registry.Registry, inv *invoke.Invoker, log *slog.Logger) *Gateway {
	return &Gateway{reg: reg, inv: inv, log: log, now: time.Now}
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
	id, path := "", r.URL.Path
	if host, _, _ := strings.Cut(r.Host, "."); strings.Contains(r.Host, ".lambda-url.") {
		id = host
	} else if rest, ok := strings.CutPrefix(path, "/url/"); ok {
		id, path, _ = strings.Cut(rest, "/")
		path = "/" + path
	}
	u := g.reg.URLByID(id)
	if u == nil {
		writeMessage(w, http.StatusNotFound, "Not Found")
		return
	}
	g.serveURL(w, r, u, path)
}

func (g *Gateway) serveURL(w http.ResponseWriter, r *http.Request, u *function.URLConfig, path string) {
	if u.Cors != nil && preflight(w, r, u.Cors) {
		return
	}
	if u.Cors != nil {
		corsHeaders(w, r, u.Cors)
	}
	ev, err := g.event(r, u, path)
	if err != nil {
		if errors.Is(err, errTooLarge) {
			writeMessage(w, http.StatusRequestEntityTooLarge, "Request Entity Too Large")
			return
		}
		writeMessage(w, http.StatusBadRequest, "Bad Request")
		return
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		writeMessage(w, http.StatusInternalServerError, "Internal Server Error")
		return
	}
	resp, err := g.inv.Invoke(r.Context(), invoke.Request{FunctionName: u.Function, Qualifier: u.Qualifier, Payload: payload})
	g.respond(w, resp, err)
}

// respond maps the invocation's outcome to the HTTP answer.
func (g *Gateway) respond(w http.ResponseWriter, resp *invoke.Response, err error) {
	var thr *invoke.ThrottleError
	switch {
	case errors.As(err, &thr):
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(thr.RetryAfter.Seconds()))))
		writeMessage(w, http.StatusTooManyRequests, "Too Many Requests")
		return
	case errors.Is(err, registry.ErrNotFound):
		writeMessage(w, http.StatusNotFound, "Not Found")
		return
	case errors.Is(err, function.ErrTooLarge):
		writeMessage(w, http.StatusRequestEntityTooLarge, "Request Entity Too Large")
		return
	case err != nil:
		g.log.Warn("function url invocation failed", "err", err)
		writeMessage(w, http.StatusInternalServerError, "Internal Server Error")
		return
	}
	if resp.FunctionError != "" {
		if bytes.Contains(resp.Payload, []byte(`"Sandbox.Timedout"`)) {
			writeMessage(w, http.StatusGatewayTimeout, "Endpoint request timed out")
			return
		}
		writeMessage(w, http.StatusBadGateway, "Internal Server Error")
		return
	}
	out, err := parseResponse(resp.Payload)
	if err != nil {
		writeMessage(w, http.StatusBadGateway, "Internal Server Error")
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

func writeMessage(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, `{"Message":"`+msg+`"}`)
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
}

// HTTPContext is requestContext.http.
type HTTPContext struct {
	Method    string `json:"method"`
	Path      string `json:"path"`
	Protocol  string `json:"protocol"`
	SourceIP  string `json:"sourceIp"`
	UserAgent string `json:"userAgent"`
}

func (g *Gateway) event(r *http.Request, u *function.URLConfig, path string) (*HTTPEvent, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, function.MaxSyncPayload+1))
	if err != nil {
		return nil, err
	}
	if len(body) > function.MaxSyncPayload {
		return nil, errTooLarge
	}
	now := g.now()
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	ev := &HTTPEvent{
		Version:        "2.0",
		RouteKey:       "$default",
		RawPath:        path,
		RawQueryString: r.URL.RawQuery,
		Headers:        map[string]string{},
		RequestContext: RequestContext{
			AccountID:    "anonymous",
			APIID:        u.ID,
			DomainName:   r.Host,
			DomainPrefix: u.ID,
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
	if q, err := url.ParseQuery(r.URL.RawQuery); err == nil && len(q) > 0 {
		ev.QueryStringParameters = make(map[string]string, len(q))
		for k, vs := range q {
			ev.QueryStringParameters[k] = strings.Join(vs, ",")
		}
	}
	if len(body) > 0 {
		if isText(r.Header.Get("Content-Type")) && utf8.Valid(body) {
			ev.Body = string(body)
		} else {
			ev.Body = base64.StdEncoding.EncodeToString(body)
			ev.IsBase64Encoded = true
		}
	}
	return ev, nil
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
// statusCode, or any other JSON, which becomes a 200 with that JSON.
func parseResponse(payload []byte) (*httpResponse, error) {
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
	if len(trimmed) == 0 || !json.Valid(trimmed) {
		return nil, errors.New("function response is not JSON")
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
