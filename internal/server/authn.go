package server

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/stratus-faas/stratus/internal/api/cloudwatchlogs"
	s3api "github.com/stratus-faas/stratus/internal/api/s3"
	"github.com/stratus-faas/stratus/internal/auth"
	"github.com/stratus-faas/stratus/internal/dashboard"
)

// maxSignedBody bounds a body read whole to check its signature: a 50 MB
// zip in base64 plus the JSON around it (the largest request any API
// takes).
const maxSignedBody = 70 << 20

// authn checks the signature of every request on the API listener before
// any API sees it, and puts the caller's identity on the request's
// context. A request it refuses has no effect anywhere. It is the one
// place authentication errors are put on the wire, in the shape of the
// protocol the request was made in.
type authn struct {
	next http.Handler
	iam  *auth.IAM
	// dev takes any request, signed or not, as the root's (loopback
	// development only; the flag says so loudly).
	dev    bool
	region string
	limits *callerLimits // nil: no per-caller rate limit
	// s3 serves the requests route says are S3's.
	s3    http.Handler
	route s3Route
}

// services are the signing services a path's API accepts.
func services(r *http.Request) []string {
	p := r.URL.Path
	switch {
	case credentialService(r) == "s3":
		return []string{"s3"}
	case strings.HasPrefix(r.Header.Get("X-Amz-Target"), cloudwatchlogs.TargetPrefix):
		return []string{"logs"}
	case r.Header.Get("X-Amz-Target") != "":
		return []string{"sqs"}
	case p == "/":
		return []string{"sqs", "iam", "sts"}
	case strings.HasPrefix(p, "/"+auth.Account+"/"):
		return []string{"sqs"}
	case strings.HasPrefix(p, "/schedules"):
		return []string{"scheduler"}
	case strings.HasPrefix(p, "/v2/"):
		return []string{"apigateway"}
	case strings.HasPrefix(p, "/stratus/"), p == "/metrics", strings.HasPrefix(p, "/debug/"):
		return []string{"stratus"}
	case len(p) > 11 && p[0] == '/' && p[5] == '-' && p[8] == '-' && p[11] == '/':
		return []string{"lambda"} // Lambda's paths start with an API date
	}
	return []string{"lambda"}
}

// public paths need no credentials.
// The dashboard's page is public to a request that carries no
// credentials and names no bucket (ListBuckets is GET / too).
func (a *authn) public(r *http.Request) bool {
	if r.URL.Path == "/healthz" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		return true
	}
	return dashboard.Public(r) && r.Header.Get("Authorization") == "" && !r.URL.Query().Has("X-Amz-Credential") && !a.route.match(r)
}

func (a *authn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Every answer names a request id, as AWS's do (an API that has its
	// own, such as Invoke's, replaces it).
	w.Header().Set("X-Amzn-RequestId", uuid.NewString())
	if a.public(r) {
		a.next.ServeHTTP(w, r)
		return
	}
	if strings.HasPrefix(r.URL.Path, "/stratus/v1/code/") && r.URL.Query().Has("X-Stratus-Signature") {
		// A code link handed out by GetFunction: checked by its handler.
		a.next.ServeHTTP(w, r)
		return
	}
	p, err := a.authenticate(r)
	if err != nil {
		writeAuthError(w, r, err)
		return
	}
	p.Secure = r.TLS != nil
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		p.SourceIP = host
	}
	if a.limits != nil {
		if ok, wait := a.limits.allow(p.ARN+"\x00"+limitKey(p), time.Now()); !ok {
			writeThrottled(w, r, wait)
			return
		}
	}
	next := a.next
	if a.s3 != nil && a.route.match(r) {
		next = a.s3
	}
	next.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
	// The request stays referenced by the connection until its next
	// request; a body read whole must not: the guard gives its memory
	// back to the system as soon as the last large body is done.
	if b, ok := r.Body.(*signedBody); ok {
		b.b = nil
	}
}

func (a *authn) authenticate(r *http.Request) (*auth.Principal, error) {
	if a.dev {
		return a.iam.RootPrincipal(), nil
	}
	return a.iam.Check(r, a.region, services(r), func() ([]byte, error) {
		if err := a.readBody(r); err != nil {
			return nil, err
		}
		return r.Body.(*signedBody).b, nil
	})
}

// errTooLarge is a body past maxSignedBody.
var errTooLarge = errors.New("request body too large")

// readBody reads the body whole, into one allocation of its size, and
// puts it back as a signedBody the APIs take without copying.
func (a *authn) readBody(r *http.Request) error {
	if r.Body == nil || r.Body == http.NoBody {
		r.Body = &signedBody{}
		return nil
	}
	if r.ContentLength > maxSignedBody {
		return errTooLarge
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength) + 1)
	}
	_, err := buf.ReadFrom(io.LimitReader(r.Body, maxSignedBody+1))
	_ = r.Body.Close()
	if err != nil {
		return &auth.Error{Kind: auth.ErrMalformed, Message: "could not read the request body: " + err.Error()}
	}
	if buf.Len() > maxSignedBody {
		return errTooLarge
	}
	r.Body = &signedBody{b: buf.Bytes()}
	return nil
}

// signedBody is a body already read; Bytes lets an API take it as is.
type signedBody struct {
	b   []byte
	off int
}

func (s *signedBody) Read(p []byte) (int, error) {
	if s.off >= len(s.b) {
		return 0, io.EOF
	}
	n := copy(p, s.b[s.off:])
	s.off += n
	return n, nil
}

func (s *signedBody) Close() error { return nil }

// Bytes is the unread rest of the body.
func (s *signedBody) Bytes() []byte { return s.b[s.off:] }

// protocol is the wire an unauthenticated request expects its error in.
type protocol int

const (
	restJSON protocol = iota // Lambda, Scheduler, API Gateway, Stratus
	awsJSON                  // SQS's JSON protocol
	queryXML                 // IAM, STS, SQS's query protocol
	s3XML                    // S3's REST XML
)

func protocolOf(r *http.Request) protocol {
	if credentialService(r) == "s3" {
		return s3XML
	}
	if t := r.Header.Get("X-Amz-Target"); t != "" {
		return awsJSON
	}
	if r.Method == http.MethodPost && (r.URL.Path == "/" || strings.HasPrefix(r.URL.Path, "/"+auth.Account+"/")) {
		return queryXML
	}
	if r.URL.Query().Has("Action") {
		return queryXML
	}
	return restJSON
}

// codes are each failure's error code in each protocol.
func codes(err error) (rest, query string, status int) {
	switch {
	case errors.Is(err, errTooLarge):
		return "RequestTooLargeException", "RequestTooLong", http.StatusRequestEntityTooLarge
	case errors.Is(err, auth.ErrMissing):
		return "MissingAuthenticationTokenException", "MissingAuthenticationToken", http.StatusForbidden
	case errors.Is(err, auth.ErrMalformed):
		return "IncompleteSignatureException", "IncompleteSignature", http.StatusForbidden
	case errors.Is(err, auth.ErrUnknownKey):
		return "UnrecognizedClientException", "InvalidClientTokenId", http.StatusForbidden
	case errors.Is(err, auth.ErrBadToken):
		if strings.Contains(err.Error(), "expired") {
			return "ExpiredTokenException", "ExpiredToken", http.StatusForbidden
		}
		return "UnrecognizedClientException", "InvalidClientTokenId", http.StatusForbidden
	case errors.Is(err, auth.ErrSkewed):
		return "InvalidSignatureException", "RequestExpired", http.StatusForbidden
	case errors.Is(err, auth.ErrExpired):
		return "InvalidSignatureException", "RequestExpired", http.StatusForbidden
	}
	return "InvalidSignatureException", "SignatureDoesNotMatch", http.StatusForbidden
}

func writeAuthError(w http.ResponseWriter, r *http.Request, err error) {
	rest, query, status := codes(err)
	// The connection may still carry a body nobody read: close it rather
	// than read a refused request's upload.
	w.Header().Set("Connection", "close")
	writeRefusal(w, r, refusal{status: status, rest: rest, query: query, awsJSON: "com.amazon.coral.service#" + rest, s3: s3Code(err), msg: err.Error()})
}

// s3Code is an authentication failure's code in S3's protocol.
func s3Code(err error) string {
	switch {
	case errors.Is(err, errTooLarge):
		return "EntityTooLarge"
	case errors.Is(err, auth.ErrMissing):
		return "AccessDenied"
	case errors.Is(err, auth.ErrMalformed):
		return "AuthorizationHeaderMalformed"
	case errors.Is(err, auth.ErrUnknownKey):
		return "InvalidAccessKeyId"
	case errors.Is(err, auth.ErrBadToken):
		if strings.Contains(err.Error(), "expired") {
			return "ExpiredToken"
		}
		return "InvalidToken"
	case errors.Is(err, auth.ErrSkewed):
		return "RequestTimeTooSkewed"
	case errors.Is(err, auth.ErrExpired):
		return "AccessDenied"
	}
	return "SignatureDoesNotMatch"
}

// refusal is an answer the server gives before any API sees the request,
// with its code in each protocol.
type refusal struct {
	status      int
	rest, query string // REST-JSON's X-Amzn-ErrorType; the query protocol's Code
	awsJSON     string // the JSON protocol's __type
	s3          string // S3's Code
	msg, reason string
}

// writeRefusal puts a refusal on the wire in the shape of the request's
// protocol: the one place the server does.
func writeRefusal(w http.ResponseWriter, r *http.Request, e refusal) {
	h := w.Header()
	switch protocolOf(r) {
	case awsJSON:
		h.Set("Content-Type", "application/x-amz-json-1.0")
		h.Set("X-Amzn-Query-Error", e.query+";Sender")
		w.WriteHeader(e.status)
		b, _ := json.Marshal(map[string]string{"__type": e.awsJSON, "message": e.msg})
		_, _ = w.Write(b)
	case s3XML:
		code := e.s3
		if code == "" {
			code = "AccessDenied"
		}
		b := s3api.RefusalXML(code, e.msg, h.Get("X-Amzn-RequestId"))
		h.Set("Content-Type", "application/xml")
		h.Set("Content-Length", strconv.Itoa(len(b)))
		status := e.status
		if status == http.StatusTooManyRequests {
			status = http.StatusServiceUnavailable // S3 throttles with 503 SlowDown
		}
		w.WriteHeader(status)
		if r.Method != http.MethodHead {
			_, _ = w.Write(b)
		}
	case queryXML:
		h.Set("Content-Type", "text/xml")
		w.WriteHeader(e.status)
		var b bytes.Buffer
		b.WriteString(`<ErrorResponse><Error><Type>Sender</Type><Code>`)
		_ = xml.EscapeText(&b, []byte(e.query))
		b.WriteString(`</Code><Message>`)
		_ = xml.EscapeText(&b, []byte(e.msg))
		b.WriteString(`</Message></Error><RequestId>` + h.Get("X-Amzn-RequestId") + `</RequestId></ErrorResponse>`)
		_, _ = w.Write(b.Bytes())
	default:
		h.Set("Content-Type", "application/json")
		h.Set("X-Amzn-ErrorType", e.rest)
		body := map[string]string{"Type": "User", "message": e.msg, "Message": e.msg}
		if e.reason != "" {
			body["Reason"] = e.reason
		}
		b, _ := json.Marshal(body)
		h.Set("Content-Length", strconv.Itoa(len(b)))
		w.WriteHeader(e.status)
		_, _ = w.Write(b)
	}
}

// limitKey is what a caller's rate is counted by: its access key, or for
// a role session (an instance's credentials, renewed per instance) the
// session's principal, so that a function's instances share one rate.
func limitKey(p *auth.Principal) string {
	if p.Kind == auth.AssumedRole {
		return ""
	}
	return p.AccessKey
}
