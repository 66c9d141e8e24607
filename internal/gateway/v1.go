package gateway

import (
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/uuid"

	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/httpapi"
)

// eventV1 builds the payload format 1.0 event (REST API style).
func (g *Gateway) eventV1(r *http.Request, apiID string, stage *httpapi.Stage, route *httpapi.Route, params map[string]string, path string, body []byte) map[string]any {
	now := g.now()
	headers := map[string]string{}
	multi := map[string][]string{}
	for k, vs := range r.Header {
		headers[k] = vs[len(vs)-1]
		multi[k] = vs
	}
	if r.Host != "" {
		headers["Host"], multi["Host"] = r.Host, []string{r.Host}
	}
	ff, proto, port := forwarded(r)
	for k, v := range map[string]string{"X-Forwarded-For": ff, "X-Forwarded-Proto": proto, "X-Forwarded-Port": port} {
		headers[k], multi[k] = v, []string{v}
	}
	var query map[string]string
	var multiQuery map[string][]string
	if q, err := url.ParseQuery(r.URL.RawQuery); err == nil && len(q) > 0 {
		query, multiQuery = map[string]string{}, map[string][]string{}
		for k, vs := range q {
			query[k], multiQuery[k] = vs[len(vs)-1], vs
		}
	}
	resource := route.RouteKey
	if _, p, ok := strings.Cut(route.RouteKey, " "); ok {
		resource = p
	}
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	b, b64 := encodeBody(r, body)
	var bodyField any
	if b != "" {
		bodyField = b
	}
	var stageVars any
	if len(stage.Variables) > 0 {
		stageVars = stage.Variables
	}
	var pathParams any
	if len(params) > 0 {
		pathParams = params
	}
	return map[string]any{
		"version":                         "1.0",
		"resource":                        resource,
		"path":                            path,
		"httpMethod":                      r.Method,
		"headers":                         headers,
		"multiValueHeaders":               multi,
		"queryStringParameters":           query,
		"multiValueQueryStringParameters": multiQuery,
		"pathParameters":                  pathParams,
		"stageVariables":                  stageVars,
		"requestContext": map[string]any{
			"accountId":        function.AccountID,
			"apiId":            apiID,
			"domainName":       r.Host,
			"domainPrefix":     apiID,
			"httpMethod":       r.Method,
			"identity":         map[string]any{"sourceIp": ip, "userAgent": r.UserAgent()},
			"path":             path,
			"protocol":         r.Proto,
			"requestId":        uuid.NewString(),
			"requestTime":      now.UTC().Format("02/Jan/2006:15:04:05 -0700"),
			"requestTimeEpoch": now.UnixMilli(),
			"resourceId":       route.ID,
			"resourcePath":     resource,
			"stage":            stage.Name,
		},
		"body":            bodyField,
		"isBase64Encoded": b64,
	}
}
