package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
)

// Every server the tests start writes its root key to a profile in its
// data folder, as a user's does; the tests sign with it as a user's
// clients would (SDKs, CLIs, and plain HTTP requests signed through
// signer below).

// rootKeys maps an API listener's host:port to its root credentials.
var rootKeys sync.Map

// loadCredentials reads the root profile the server wrote.
func (s *server) loadCredentials() {
	s.t.Helper()
	f, err := os.Open(filepath.Join(s.dataDir, "credentials"))
	if err != nil {
		s.t.Fatalf("the server wrote no root profile: %v", err)
	}
	defer f.Close()
	var c aws.Credentials
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "aws_access_key_id":
			c.AccessKeyID = strings.TrimSpace(v)
		case "aws_secret_access_key":
			c.SecretAccessKey = strings.TrimSpace(v)
		}
	}
	if c.AccessKeyID == "" || c.SecretAccessKey == "" {
		s.t.Fatal("the root profile has no key")
	}
	s.root = c
	rootKeys.Store(s.addr, c)
}

// creds are the root's, for SDK clients.
func (s *server) creds() aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(s.root.AccessKeyID, s.root.SecretAccessKey, "")
}

// clientEnv is the environment of an AWS CLI or boto3 run as the root.
func (s *server) clientEnv(home string) []string {
	return append(os.Environ(),
		"AWS_ACCESS_KEY_ID="+s.root.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+s.root.SecretAccessKey, "AWS_DEFAULT_REGION=us-east-1",
		"AWS_CONFIG_FILE="+filepath.Join(home, "config"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(home, "credentials"),
		"AWS_PAGER=",
	)
}

func (s *server) iam() *iam.Client {
	return iam.New(iam.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.Endpoint), Credentials: s.creds()})
}

// lambdaTrust lets Lambda assume a role.
const lambdaTrust = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}`

// ensureRoles makes the execution roles the tests' functions name
// ("test", "x"), allowed everything, as a developer's first role often is.
func (s *server) ensureRoles() {
	s.t.Helper()
	c := s.iam()
	ctx := context.Background()
	for _, name := range []string{"test", "x"} {
		_, err := c.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String(name), AssumeRolePolicyDocument: aws.String(lambdaTrust)})
		var exists *iamtypes.EntityAlreadyExistsException
		if err != nil && !errors.As(err, &exists) {
			s.t.Fatalf("create role %s: %v", name, err)
		}
		if _, err := c.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: aws.String(name),
			PolicyArn: aws.String("arn:aws:iam::aws:policy/AdministratorAccess")}); err != nil {
			s.t.Fatalf("attach to role %s: %v", name, err)
		}
	}
}

// signer signs plain HTTP requests to a test server's API listener with
// its root key, as a user's own HTTP client would; other requests (the
// HTTP trigger listener, and requests already signed) pass as they are.
// It is http.DefaultTransport in these tests; plainClient does not sign.
type signer struct{ base http.RoundTripper }

var plainClient = &http.Client{Transport: http.DefaultTransport}

func init() { http.DefaultTransport = signer{base: http.DefaultTransport} }

func (s signer) RoundTrip(r *http.Request) (*http.Response, error) {
	v, ok := rootKeys.Load(r.URL.Host)
	if !ok || r.Header.Get("Authorization") != "" || r.URL.Query().Has("X-Amz-Signature") || r.URL.Query().Has("X-Stratus-Signature") ||
		r.URL.Path == "/healthz" {
		return s.base.RoundTrip(r)
	}
	var body []byte
	if r.Body != nil {
		var err error
		if body, err = io.ReadAll(r.Body); err != nil {
			return nil, err
		}
		_ = r.Body.Close()
	}
	r = r.Clone(r.Context())
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(r.Context(), v.(aws.Credentials), r, hex.EncodeToString(sum[:]), serviceOf(r), "us-east-1", time.Now()); err != nil {
		return nil, err
	}
	return s.base.RoundTrip(r)
}

// serviceOf is the service a request to the API listener is signed for.
func serviceOf(r *http.Request) string {
	p := r.URL.Path
	switch {
	case r.Header.Get("X-Amz-Target") != "", strings.HasPrefix(p, "/000000000000/"):
		return "sqs"
	case p == "/" || p == "":
		return "sqs"
	case strings.HasPrefix(p, "/schedules"):
		return "scheduler"
	case strings.HasPrefix(p, "/v2/"):
		return "apigateway"
	case strings.HasPrefix(p, "/stratus/"), p == "/metrics", strings.HasPrefix(p, "/debug/"):
		return "stratus"
	}
	return "lambda"
}

// unsigned sends r without credentials.
func unsigned(t testing.TB, r *http.Request) *http.Response {
	t.Helper()
	resp, err := plainClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}
