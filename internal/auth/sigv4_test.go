package auth

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

var testCreds = aws.Credentials{AccessKeyID: "AKIATESTKEY", SecretAccessKey: "secret/with+chars"}

// received turns a client request into what a server sees.
func received(t *testing.T, c *http.Request, body []byte) *http.Request {
	t.Helper()
	r := httptest.NewRequest(c.Method, c.URL.RequestURI(), bytes.NewReader(body))
	r.Host = c.URL.Host
	for k, v := range c.Header {
		r.Header[k] = v
	}
	if c.ContentLength > 0 {
		r.Header.Set("Content-Length", strconv.FormatInt(c.ContentLength, 10))
	}
	return r
}

func signed(t *testing.T, method, url, service string, body []byte, hdr map[string]string, at time.Time) *http.Request {
	t.Helper()
	c, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		c.Header.Set(k, v)
	}
	if err := v4.NewSigner().SignHTTP(context.Background(), testCreds, c, PayloadHash(body), service, "us-east-1", at); err != nil {
		t.Fatal(err)
	}
	return received(t, c, body)
}

func verify(r *http.Request, now time.Time, uriEscaped bool) error {
	sig, err := ParseSignature(r)
	if err != nil {
		return err
	}
	if err := sig.CheckTime(now); err != nil {
		return err
	}
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(r.Body)
	return sig.Verify(r, testCreds.SecretAccessKey, PayloadHash(buf.Bytes()), uriEscaped)
}

func TestVerifyAgainstTheSDKSigner(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name, method, url string
		body              string
		hdr               map[string]string
	}{
		{"invoke", "POST", "http://127.0.0.1:9000/2015-03-31/functions/echo/invocations", `{"a":1}`, map[string]string{"X-Amz-Invocation-Type": "RequestResponse"}},
		{"arn in path", "GET", "http://127.0.0.1:9000/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Aecho/configuration?Qualifier=%24LATEST", "", nil},
		{"query order and escapes", "GET", "http://localhost:9000/2015-03-31/functions/?MaxItems=5&Marker=a%2Fb&FunctionVersion=ALL", "", nil},
		{"form body", "POST", "http://127.0.0.1:9000/", "Action=ListUsers&Version=2010-05-08", map[string]string{"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}},
		{"spaces in a header", "POST", "http://127.0.0.1:9000/", "{}", map[string]string{"X-Amz-Target": "  AmazonSQS.ListQueues  ", "X-Custom": "a   b"}},
		{"empty body", "DELETE", "http://127.0.0.1:9000/2015-03-31/functions/x", "", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := signed(t, tc.method, tc.url, "lambda", []byte(tc.body), tc.hdr, now)
			if err := verify(r, now, true); err != nil {
				t.Fatalf("a request the SDK signed does not verify: %v", err)
			}
		})
	}
}

func TestVerifyRefusesMutations(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	body := []byte(`{"FunctionName":"f"}`)
	url := "http://127.0.0.1:9000/2015-03-31/functions/f/invocations?Qualifier=live"
	mutations := []struct {
		name   string
		mutate func(r *http.Request) *http.Request
		kind   error
	}{
		{"body byte", func(r *http.Request) *http.Request {
			b := bytes.Clone(body)
			b[3] ^= 1
			r.Body = ioNop(b)
			return r
		}, ErrBadSignature},
		{"signed header", func(r *http.Request) *http.Request {
			r.Header.Set("X-Amz-Date", now.Add(time.Second).Format(amzDateFormat))
			return r
		}, ErrBadSignature},
		{"query", func(r *http.Request) *http.Request {
			r.RequestURI = strings.Replace(r.RequestURI, "live", "prod", 1)
			return r
		}, ErrBadSignature},
		{"path", func(r *http.Request) *http.Request {
			r.RequestURI = strings.Replace(r.RequestURI, "/f/", "/g/", 1)
			return r
		}, ErrBadSignature},
		{"host", func(r *http.Request) *http.Request { r.Host = "127.0.0.1:9001"; return r }, ErrBadSignature},
		{"method", func(r *http.Request) *http.Request { r.Method = "PUT"; return r }, ErrBadSignature},
		{"region", func(r *http.Request) *http.Request {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "us-east-1", "eu-west-1", 1))
			return r
		}, ErrBadSignature},
		{"service", func(r *http.Request) *http.Request {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "/lambda/", "/sqs/", 1))
			return r
		}, ErrBadSignature},
		{"signature byte", func(r *http.Request) *http.Request {
			a := r.Header.Get("Authorization")
			last := a[len(a)-1]
			repl := byte('0')
			if last == '0' {
				repl = '1'
			}
			r.Header.Set("Authorization", a[:len(a)-1]+string(repl))
			return r
		}, ErrBadSignature},
		{"unsigned", func(r *http.Request) *http.Request { r.Header.Del("Authorization"); return r }, ErrMissing},
		{"garbage", func(r *http.Request) *http.Request {
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 garbage")
			return r
		}, ErrMalformed},
		{"sigv2", func(r *http.Request) *http.Request { r.Header.Set("Authorization", "AWS AKIA:abc"); return r }, ErrMalformed},
	}
	for _, m := range mutations {
		t.Run(m.name, func(t *testing.T) {
			r := m.mutate(signed(t, "POST", url, "lambda", body, nil, now))
			err := verify(r, now, true)
			if !errors.Is(err, m.kind) {
				t.Fatalf("got %v, want %v", err, m.kind)
			}
		})
	}
	for _, skew := range []time.Duration{6 * time.Minute, -6 * time.Minute} {
		r := signed(t, "POST", url, "lambda", body, nil, now.Add(skew))
		if err := verify(r, now, true); !errors.Is(err, ErrSkewed) {
			t.Errorf("skew %v: got %v", skew, err)
		}
	}
	r := signed(t, "POST", url, "lambda", body, nil, now.Add(4*time.Minute))
	if err := verify(r, now, true); err != nil {
		t.Errorf("4 minutes of skew is allowed: %v", err)
	}
}

func ioNop(b []byte) *nopBody { return &nopBody{bytes.NewReader(b)} }

type nopBody struct{ *bytes.Reader }

func (nopBody) Close() error { return nil }

func TestPresigned(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	c, _ := http.NewRequest("GET", "http://127.0.0.1:9000/bucket/key%20with%20space?X-Amz-Expires=60", nil)
	u, hdr, err := v4.NewSigner().PresignHTTP(context.Background(), testCreds, c, UnsignedPayload, "s3", "us-east-1", now, func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	if err != nil {
		t.Fatal(err)
	}
	pc, _ := http.NewRequest("GET", u, nil)
	for k, v := range hdr {
		pc.Header[k] = v
	}
	r := received(t, pc, nil)
	sig, err := ParseSignature(r)
	if err != nil {
		t.Fatal(err)
	}
	if !sig.Presigned || sig.Expires != time.Minute {
		t.Fatalf("parsed %+v", sig)
	}
	if err := sig.CheckTime(now.Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := sig.Verify(r, testCreds.SecretAccessKey, UnsignedPayload, false); err != nil {
		t.Fatalf("presigned URL does not verify: %v", err)
	}
	if err := sig.CheckTime(now.Add(61 * time.Second)); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired URL: %v", err)
	}
	r.RequestURI = strings.Replace(r.RequestURI, "key%20with", "key%20wit", 1)
	if err := sig.Verify(r, testCreds.SecretAccessKey, UnsignedPayload, false); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("changed path: %v", err)
	}
}

func FuzzParseSignature(f *testing.F) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	f.Add("AWS4-HMAC-SHA256 Credential=AKIA/20261201/us-east-1/lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature=abcd", "20261201T120000Z", "/p?a=b&c")
	f.Add("AWS4-HMAC-SHA256 Credential=//////, SignedHeaders=;;, Signature==", "x", "/%zz?%%=%")
	f.Add("", "", "/?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=a%2Fb&X-Amz-Expires=-1")
	f.Fuzz(func(t *testing.T, authz, date, uri string) {
		if !strings.HasPrefix(uri, "/") || strings.ContainsAny(uri, " \r\n\t#") {
			return
		}
		r, err := http.NewRequest("GET", "http://h"+uri, nil)
		if err != nil {
			return
		}
		r.RequestURI = uri
		r.Host = "h"
		r.Header.Set("Authorization", authz)
		r.Header.Set("X-Amz-Date", date)
		sig, err := ParseSignature(r)
		if err != nil {
			var ae *Error
			if !errors.As(err, &ae) {
				t.Fatalf("error of the wrong type: %v", err)
			}
			return
		}
		_ = sig.CheckTime(now)
		// A signature nobody computed never verifies.
		if sig.Verify(r, "secret", UnsignedPayload, true) == nil {
			t.Fatalf("a made-up signature verified: %q", authz)
		}
	})
}

// BenchmarkVerify: parsing and checking the signature of a warm invoke,
// the work SigV4 adds to each request.
func BenchmarkVerify(b *testing.B) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	body := []byte(`{"name":"bench"}`)
	c, _ := http.NewRequest("POST", "http://127.0.0.1:9000/2015-03-31/functions/bench/invocations", bytes.NewReader(body))
	if err := v4.NewSigner().SignHTTP(context.Background(), testCreds, c, PayloadHash(body), "lambda", "us-east-1", now); err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest(c.Method, c.URL.RequestURI(), nil)
	r.Host = c.URL.Host
	r.Header = c.Header.Clone()
	r.Header.Set("Content-Length", strconv.Itoa(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		sig, err := ParseSignature(r)
		if err != nil {
			b.Fatal(err)
		}
		if err := sig.Verify(r, testCreds.SecretAccessKey, PayloadHash(body), true); err != nil {
			b.Fatal(err)
		}
	}
}
