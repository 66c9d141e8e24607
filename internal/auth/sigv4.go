package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/smithy-go/encoding/httpbinding"
)

// Signature Version 4, verified. The canonical request is built here
// rather than by the SDK's signer: a signer decides itself which headers
// to sign (it always adds content-length for a body, X-Amz-Date and the
// session token, and skips some names), while a verifier must use exactly
// the list the client signed. The SDK's signer signs the requests of the
// tests that check this code against it.

const (
	algorithm = "AWS4-HMAC-SHA256"
	// MaxSkew is how far a request's time may be from the server's.
	MaxSkew = 5 * time.Minute
	// maxPresign is the longest a presigned URL may be valid (7 days).
	maxPresign = 7 * 24 * time.Hour
	// UnsignedPayload is the payload hash of S3 requests and presigned
	// URLs whose body is not signed.
	UnsignedPayload = "UNSIGNED-PAYLOAD"
	amzDateFormat   = "20060102T150405Z"
)

// Signature is what a request's Authorization header or presigned query
// says about how it was signed.
type Signature struct {
	AccessKey     string
	Date          string // the scope's date, YYYYMMDD
	Region        string
	Service       string
	SignedHeaders []string
	Signature     string
	Time          time.Time
	Presigned     bool
	Expires       time.Duration // presigned only
	Token         string        // X-Amz-Security-Token, for temporary credentials
	PayloadHash   string        // X-Amz-Content-Sha256 when sent
}

// Signed reports whether r carries a SigV4 signature of either kind (it
// may still be malformed).
func Signed(r *http.Request) bool {
	return r.Header.Get("Authorization") != "" || r.URL.Query().Has("X-Amz-Algorithm") || r.URL.Query().Has("X-Amz-Credential")
}

// ParseSignature reads the signature of r without checking it.
func ParseSignature(r *http.Request) (*Signature, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		return parseHeader(r, h)
	}
	q := r.URL.Query()
	if q.Has("X-Amz-Algorithm") || q.Has("X-Amz-Credential") || q.Has("X-Amz-Signature") {
		return parsePresigned(q)
	}
	return nil, errorf(ErrMissing, "Request is missing Authentication Token")
}

func parseHeader(r *http.Request, h string) (*Signature, error) {
	alg, rest, ok := strings.Cut(h, " ")
	if !ok || alg != algorithm {
		if strings.HasPrefix(h, "AWS ") {
			return nil, errorf(ErrMalformed, "Signature Version 2 is not supported: sign requests with Signature Version 4 (AWS4-HMAC-SHA256)")
		}
		return nil, errorf(ErrMalformed, "Authorization header requires the %s algorithm", algorithm)
	}
	fields := map[string]string{}
	for part := range strings.SplitSeq(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, errorf(ErrMalformed, "Authorization header requires Credential, SignedHeaders and Signature parameters, each as name=value")
		}
		if _, dup := fields[k]; dup {
			return nil, errorf(ErrMalformed, "Authorization header has %s twice", k)
		}
		fields[k] = v
	}
	for _, k := range []string{"Credential", "SignedHeaders", "Signature"} {
		if fields[k] == "" {
			return nil, errorf(ErrMalformed, "Authorization header requires '%s' parameter. Authorization=%s", k, truncate(h, 200))
		}
	}
	s := &Signature{Signature: fields["Signature"], Token: r.Header.Get("X-Amz-Security-Token"), PayloadHash: r.Header.Get("X-Amz-Content-Sha256")}
	if err := s.scope(fields["Credential"]); err != nil {
		return nil, err
	}
	if err := s.headers(fields["SignedHeaders"]); err != nil {
		return nil, err
	}
	date := r.Header.Get("X-Amz-Date")
	if date == "" || !slices.Contains(s.SignedHeaders, "x-amz-date") {
		return nil, errorf(ErrMalformed, "Authorization header requires the X-Amz-Date header, signed")
	}
	if err := s.when(date); err != nil {
		return nil, err
	}
	if s.Token != "" && !slices.Contains(s.SignedHeaders, "x-amz-security-token") {
		return nil, errorf(ErrMalformed, "the X-Amz-Security-Token header must be signed")
	}
	return s, nil
}

func parsePresigned(q url.Values) (*Signature, error) {
	for _, k := range []string{"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Signature"} {
		if len(q[k]) != 1 || q[k][0] == "" {
			return nil, errorf(ErrMalformed, "Query-string authentication requires the %s parameter, once", k)
		}
	}
	if q.Get("X-Amz-Algorithm") != algorithm {
		return nil, errorf(ErrMalformed, "X-Amz-Algorithm only supports %q", algorithm)
	}
	s := &Signature{Presigned: true, Signature: q.Get("X-Amz-Signature"), Token: q.Get("X-Amz-Security-Token"), PayloadHash: q.Get("X-Amz-Content-Sha256")}
	if err := s.scope(q.Get("X-Amz-Credential")); err != nil {
		return nil, err
	}
	if err := s.headers(q.Get("X-Amz-SignedHeaders")); err != nil {
		return nil, err
	}
	if err := s.when(q.Get("X-Amz-Date")); err != nil {
		return nil, err
	}
	exp := q.Get("X-Amz-Expires")
	if exp == "" {
		exp = "900" // what services assume when a presigned URL says nothing
	}
	n, err := strconv.Atoi(exp)
	if err != nil || n < 1 {
		return nil, errorf(ErrMalformed, "X-Amz-Expires should be a number of seconds, at least 1")
	}
	if time.Duration(n)*time.Second > maxPresign {
		return nil, errorf(ErrMalformed, "X-Amz-Expires must be less than a week (in seconds) that is 604800")
	}
	s.Expires = time.Duration(n) * time.Second
	return s, nil
}

// scope reads AKID/DATE/REGION/SERVICE/aws4_request.
func (s *Signature) scope(cred string) error {
	parts := strings.Split(cred, "/")
	if len(parts) != 5 || parts[4] != "aws4_request" || parts[0] == "" || len(parts[1]) != 8 || parts[2] == "" || parts[3] == "" {
		return errorf(ErrMalformed, "Credential should be scoped to a valid region, service and date: ACCESS_KEY/YYYYMMDD/REGION/SERVICE/aws4_request, not %q", truncate(cred, 120))
	}
	s.AccessKey, s.Date, s.Region, s.Service = parts[0], parts[1], parts[2], parts[3]
	return nil
}

func (s *Signature) headers(list string) error {
	names := strings.Split(list, ";")
	for i, n := range names {
		if n == "" || n != strings.ToLower(n) || (i > 0 && names[i-1] >= n) {
			return errorf(ErrMalformed, "SignedHeaders must be lowercase names, sorted, each once: %q", truncate(list, 200))
		}
	}
	if !slices.Contains(names, "host") {
		return errorf(ErrMalformed, "SignedHeaders must include host")
	}
	s.SignedHeaders = names
	return nil
}

func (s *Signature) when(date string) error {
	t, err := time.Parse(amzDateFormat, date)
	if err != nil {
		return errorf(ErrMalformed, "X-Amz-Date must be in the ISO8601 basic format YYYYMMDD'T'HHMMSS'Z', not %q", truncate(date, 40))
	}
	if t.Format("20060102") != s.Date {
		return errorf(ErrBadSignature, "Credential should be scoped to a valid date: the scope says %s, X-Amz-Date %s", s.Date, date)
	}
	s.Time = t
	return nil
}

// CheckTime refuses a signature made too far from now, or a presigned
// URL past its expiry.
func (s *Signature) CheckTime(now time.Time) error {
	if s.Presigned {
		if s.Time.After(now.Add(MaxSkew)) {
			return errorf(ErrSkewed, "Request is not yet valid: signed for %s, the server's time is %s", s.Time.Format(amzDateFormat), now.UTC().Format(amzDateFormat))
		}
		if now.After(s.Time.Add(s.Expires)) {
			return errorf(ErrExpired, "Request has expired: valid until %s, now %s", s.Time.Add(s.Expires).Format(amzDateFormat), now.UTC().Format(amzDateFormat))
		}
		return nil
	}
	if d := now.Sub(s.Time); d > MaxSkew || d < -MaxSkew {
		return errorf(ErrSkewed, "Signature expired: %s is now earlier than %s (%s - 5 min.)",
			s.Time.Format(amzDateFormat), now.Add(-MaxSkew).UTC().Format(amzDateFormat), now.UTC().Format(amzDateFormat))
	}
	return nil
}

// Verify checks s against r: the request as received (r.URL.RawPath or
// RequestURI for the path the client encoded) and payloadHash, the hex
// SHA-256 of its body or UnsignedPayload. uriEscaped is false for S3,
// whose canonical path is not encoded a second time.
func (s *Signature) Verify(r *http.Request, secret, payloadHash string, uriEscaped bool) error {
	canon := canonicalRequest(r, s, payloadHash, uriEscaped)
	sum := sha256.Sum256([]byte(canon))
	scope := s.Date + "/" + s.Region + "/" + s.Service + "/aws4_request"
	toSign := algorithm + "\n" + s.Time.Format(amzDateFormat) + "\n" + scope + "\n" + hex.EncodeToString(sum[:])
	key := signingKey(secret, s.Date, s.Region, s.Service)
	want := hmacSHA256(key, []byte(toSign))
	got, err := hex.DecodeString(s.Signature)
	if err != nil || !hmac.Equal(want, got) {
		return errorf(ErrBadSignature, "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
	}
	return nil
}

// canonicalRequest is SigV4's canonical form of r, as s says it was signed.
func canonicalRequest(r *http.Request, s *Signature, payloadHash string, uriEscaped bool) string {
	var b strings.Builder
	b.Grow(512)
	b.WriteString(r.Method)
	b.WriteByte('\n')
	path := rawPath(r)
	if uriEscaped {
		path = escape(path, false)
	}
	b.WriteString(path)
	b.WriteByte('\n')
	b.WriteString(canonicalQuery(rawQuery(r), s.Presigned))
	b.WriteByte('\n')
	for _, h := range s.SignedHeaders {
		b.WriteString(h)
		b.WriteByte(':')
		var vals []string
		switch h {
		case "host":
			vals = []string{r.Host}
		case "content-length":
			vals = r.Header.Values(h)
			if len(vals) == 0 && r.ContentLength >= 0 {
				vals = []string{strconv.FormatInt(r.ContentLength, 10)}
			}
		case "transfer-encoding":
			vals = r.TransferEncoding
		default:
			vals = r.Header.Values(h)
		}
		for i, v := range vals {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(collapseSpaces(v))
		}
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(s.SignedHeaders, ";"))
	b.WriteByte('\n')
	b.WriteString(payloadHash)
	return b.String()
}

// rawPath is the path as the client encoded it.
func rawPath(r *http.Request) string {
	p := r.RequestURI
	if p == "" || p == "*" || !strings.HasPrefix(p, "/") {
		p = r.URL.EscapedPath()
	}
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	if p == "" {
		p = "/"
	}
	return p
}

func rawQuery(r *http.Request) string {
	if r.RequestURI != "" {
		if _, q, ok := strings.Cut(r.RequestURI, "?"); ok {
			return q
		}
		return ""
	}
	return r.URL.RawQuery
}

// canonicalQuery sorts the parameters by name, then value, each encoded
// as SigV4 requires; a presigned URL's own signature is left out.
func canonicalQuery(raw string, presigned bool) string {
	if raw == "" {
		return ""
	}
	type pair struct{ k, v string }
	var pairs []pair
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		k, v = unescapeQuery(k), unescapeQuery(v)
		if presigned && k == "X-Amz-Signature" {
			continue
		}
		pairs = append(pairs, pair{escape(k, true), escape(v, true)})
	}
	slices.SortFunc(pairs, func(a, b pair) int {
		if c := strings.Compare(a.k, b.k); c != 0 {
			return c
		}
		return strings.Compare(a.v, b.v)
	})
	var b strings.Builder
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.k)
		b.WriteByte('=')
		b.WriteString(p.v)
	}
	return b.String()
}

// escape is SigV4's URI encoding (smithy-go's), skipped for the common
// string that needs none.
func escape(s string, encodeSep bool) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' || c == '/' && !encodeSep) {
			return httpbinding.EscapePath(s, encodeSep)
		}
	}
	return s
}

func unescapeQuery(s string) string {
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}

// collapseSpaces trims v and folds runs of spaces into one.
func collapseSpaces(v string) string {
	v = strings.TrimSpace(v)
	if !strings.Contains(v, "  ") {
		return v
	}
	return strings.Join(strings.Fields(v), " ")
}

func hmacSHA256(key, data []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(data)
	return m.Sum(nil)
}

// Derived signing keys are kept, as SDKs keep them: four HMACs per
// request otherwise. The cache is small and emptied when full.
var keyCache struct {
	sync.Mutex
	m map[scopeKey][]byte
}

type scopeKey struct{ secret, date, region, service string }

func signingKey(secret, date, region, service string) []byte {
	id := scopeKey{secret, date, region, service}
	keyCache.Lock()
	k, ok := keyCache.m[id]
	keyCache.Unlock()
	if ok {
		return k
	}
	k = hmacSHA256([]byte("AWS4"+secret), []byte(date))
	k = hmacSHA256(k, []byte(region))
	k = hmacSHA256(k, []byte(service))
	k = hmacSHA256(k, []byte("aws4_request"))
	keyCache.Lock()
	if keyCache.m == nil || len(keyCache.m) >= 4096 {
		keyCache.m = map[scopeKey][]byte{}
	}
	keyCache.m[id] = k
	keyCache.Unlock()
	return k
}

// PayloadHash is the hex SHA-256 of body.
func PayloadHash(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
