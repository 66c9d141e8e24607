package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// TestUnauthenticated: every route and method, with no credentials,
// garbage credentials, an unknown key and path tricks, is refused with
// 403 and has no effect; only /healthz answers.
func TestUnauthenticated(t *testing.T) {
	s := startServer(t, "")
	lc := s.lambda()
	createFunction(t, lc, "keep", goZip(t), fnOpts{})
	createQueue(t, s.sqs(), "keep-q", nil)
	zip := `{"FunctionName":"evil","Runtime":"provided.al2023","Handler":"bootstrap","Role":"arn:aws:iam::000000000000:role/test","Code":{"ZipFile":"UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="}}`
	routes := []struct {
		method, path, body string
		hdr                map[string]string
	}{
		{"POST", "/2015-03-31/functions", zip, nil},
		{"GET", "/2015-03-31/functions/", "", nil},
		{"GET", "/2015-03-31/functions/keep", "", nil},
		{"GET", "/2015-03-31/functions/keep/configuration", "", nil},
		{"PUT", "/2015-03-31/functions/keep/configuration", `{"Environment":{"Variables":{"PWNED":"1"}}}`, nil},
		{"PUT", "/2015-03-31/functions/keep/code", `{"ZipFile":"UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="}`, nil},
		{"DELETE", "/2015-03-31/functions/keep", "", nil},
		{"POST", "/2015-03-31/functions/keep/invocations", `{}`, nil},
		{"POST", "/2015-03-31/functions/keep/versions", `{}`, nil},
		{"POST", "/2015-03-31/functions/keep/aliases", `{"Name":"a","FunctionVersion":"$LATEST"}`, nil},
		{"PUT", "/2017-10-31/functions/keep/concurrency", `{"ReservedConcurrentExecutions":0}`, nil},
		{"POST", "/2021-10-31/functions/keep/url", `{"AuthType":"NONE"}`, nil},
		{"POST", "/2015-03-31/event-source-mappings/", `{"FunctionName":"keep","EventSourceArn":"arn:aws:sqs:us-east-1:000000000000:keep-q"}`, nil},
		{"GET", "/2017-03-31/tags/arn:aws:lambda:us-east-1:000000000000:function:keep", "", nil},
		{"GET", "/2016-08-19/account-settings", "", nil},
		{"POST", "/", `{"QueueNamePrefix":""}`, map[string]string{"X-Amz-Target": "AmazonSQS.ListQueues", "Content-Type": "application/x-amz-json-1.0"}},
		{"POST", "/", "Action=CreateQueue&QueueName=evil&Version=2012-11-05", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}},
		{"POST", "/000000000000/keep-q", "Action=PurgeQueue&Version=2012-11-05", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}},
		{"POST", "/", "Action=CreateUser&UserName=evil&Version=2010-05-08", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}},
		{"POST", "/", "Action=GetCallerIdentity&Version=2011-06-15", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}},
		{"POST", "/schedules/evil", `{"ScheduleExpression":"rate(1 minute)","FlexibleTimeWindow":{"Mode":"OFF"},"Target":{"Arn":"arn:aws:lambda:us-east-1:000000000000:function:keep","RoleArn":"arn:aws:iam::000000000000:role/x"}}`, nil},
		{"GET", "/schedules", "", nil},
		{"POST", "/v2/apis", `{"Name":"evil","ProtocolType":"HTTP"}`, nil},
		{"GET", "/v2/apis", "", nil},
		{"GET", "/stratus/v1/usage", "", nil},
		{"GET", "/stratus/v1/queues", "", nil},
		{"GET", "/stratus/v1/functions/keep/logs", "", nil},
		{"GET", "/stratus/v1/code/" + strings.Repeat("a", 64), "", nil},
		{"GET", "/metrics", "", nil},
		{"GET", "/debug/pprof/", "", nil},
		{"GET", "/", "", nil},
		{"GET", "//2015-03-31/functions/", "", nil},
		{"GET", "/2015-03-31/functions/%2e%2e/keep", "", nil},
		{"GET", "/2015-03-31/FUNCTIONS/", "", nil},
		{"DELETE", "/2015-03-31/functions%2Fkeep", "", nil},
		{"POST", "/healthz", "", nil},
	}
	// Every route the APIs register, read from their source so a new
	// route is covered without editing this table, and every SQS and
	// IAM action.
	for _, rt := range registeredRoutes(t) {
		routes = append(routes, struct {
			method, path, body string
			hdr                map[string]string
		}{rt[0], rt[1], "{}", nil})
	}
	for _, op := range sourceSet(t, "internal/api/sqs/ops.go", `"([A-Z][A-Za-z]+)": true`) {
		routes = append(routes, struct {
			method, path, body string
			hdr                map[string]string
		}{"POST", "/", `{"QueueUrl":"` + s.Endpoint + `/000000000000/keep-q"}`, map[string]string{"X-Amz-Target": "AmazonSQS." + op, "Content-Type": "application/x-amz-json-1.0"}})
	}
	for _, op := range sourceSet(t, "internal/api/iam/ops.go", `"([A-Z][A-Za-z]+)": true`) {
		routes = append(routes, struct {
			method, path, body string
			hdr                map[string]string
		}{"POST", "/", "Action=" + op + "&Version=2010-05-08&UserName=evil&RoleName=evil", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}})
	}
	t.Logf("%d routes, each with %d kinds of bad credentials", len(routes), 4)
	if len(routes) < 120 {
		t.Fatalf("only %d routes found: the source scan broke", len(routes))
	}
	creds := []struct {
		name string
		set  func(r *http.Request)
	}{
		{"none", func(*http.Request) {}},
		{"garbage", func(r *http.Request) { r.Header.Set("Authorization", "Bearer hunter2") }},
		{"unknown key", func(r *http.Request) {
			sum := sha256.Sum256(nil)
			_ = v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: "AKIANOTAKEYATALL000", SecretAccessKey: "x"}, r, hex.EncodeToString(sum[:]), serviceOf(r), "us-east-1", time.Now())
		}},
		{"presign garbage", func(r *http.Request) {
			r.URL.RawQuery = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" + s.root.AccessKeyID + "%2F20260101%2Fus-east-1%2Flambda%2Faws4_request&X-Amz-Date=20260101T000000Z&X-Amz-SignedHeaders=host&X-Amz-Signature=00"
		}},
	}
	for _, rt := range routes {
		for _, c := range creds {
			r, err := http.NewRequest(rt.method, s.Endpoint+rt.path, strings.NewReader(rt.body))
			if err != nil {
				t.Fatal(err)
			}
			r.URL.Opaque = "//" + s.addr + rt.path // keep the path exactly as written
			for k, v := range rt.hdr {
				r.Header.Set(k, v)
			}
			c.set(r)
			resp := unsigned(t, r)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rt.method == "GET" && rt.path == "/" && c.name == "none" {
				// The dashboard's page: public, and holds no data.
				if resp.StatusCode != 200 || !strings.Contains(string(b), "<title>Stratus</title>") {
					t.Errorf("GET / without credentials: %d %s, want the dashboard", resp.StatusCode, b)
				}
				continue
			}
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s %s with %s credentials: %d %s, want 403", rt.method, rt.path, c.name, resp.StatusCode, b)
			}
		}
	}
	if resp := unsigned(t, mustRequest(t, "GET", s.Endpoint+"/healthz")); resp.StatusCode != 200 {
		t.Errorf("/healthz: %d", resp.StatusCode)
	}
	// No side effect: the one function and queue, unchanged.
	fns, err := lc.ListFunctions(context.Background(), &lambda.ListFunctionsInput{})
	if err != nil || len(fns.Functions) != 1 || fns.Functions[0].Environment != nil {
		t.Fatalf("functions after the attempts: %+v %v", fns, err)
	}
	qs, err := s.sqs().ListQueues(context.Background(), &sqs.ListQueuesInput{})
	if err != nil || len(qs.QueueUrls) != 1 {
		t.Fatalf("queues after the attempts: %v %v", qs, err)
	}
	users, err := s.iam().ListUsers(context.Background(), &iam.ListUsersInput{})
	if err != nil || len(users.Users) != 0 {
		t.Fatalf("users after the attempts: %v %v", users, err)
	}
	// The SDK sees its protocol's error codes.
	bad := lambda.New(lambda.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.Endpoint), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(s.root.AccessKeyID, "wrong", "")})
	if _, err := bad.ListFunctions(context.Background(), &lambda.ListFunctionsInput{}); errorCode(err) != "InvalidSignatureException" || httpStatus(err) != 403 {
		t.Errorf("wrong secret: %v", err)
	}
	unknown := sqs.New(sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.Endpoint), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider("AKIAUNKNOWNKEY000000", "x", "")})
	if _, err := unknown.ListQueues(context.Background(), &sqs.ListQueuesInput{}); errorCode(err) != "InvalidClientTokenId" && errorCode(err) != "UnrecognizedClientException" {
		t.Errorf("unknown key on SQS: %v (%s)", err, errorCode(err))
	}
	wrongRegion := lambda.New(lambda.Options{Region: "eu-west-1", BaseEndpoint: aws.String(s.Endpoint), RetryMaxAttempts: 1, Credentials: s.creds()})
	if _, err := wrongRegion.ListFunctions(context.Background(), &lambda.ListFunctionsInput{}); httpStatus(err) != 403 {
		t.Errorf("wrong region: %v", err)
	}
}

// registeredRoutes reads "METHOD PATH" of every mux.Handle(Func) of the
// API packages, with their path variables filled in.
func registeredRoutes(t *testing.T) [][2]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "internal", "api", "*", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	consts := regexp.MustCompile(`(?m)^\s*(?:const )?(\w+)\s*:?= "(/[^"]*)"`)
	plain := regexp.MustCompile(`mux\.Handle(?:Func)?\("([A-Z]+) (/[^"]*)"`)
	joined := regexp.MustCompile(`mux\.Handle(?:Func)?\("([A-Z]+) "\+(\w+)(?:\+"([^"]*)")?`)
	account := regexp.MustCompile(`mux\.Handle(?:Func)?\("([A-Z]+) /"\+queue\.Account\+"([^"]*)"`)
	fill := strings.NewReplacer("{name}", "keep", "{alias}", "a", "{uuid}", "00000000-0000-0000-0000-000000000000",
		"{arn}", "arn:aws:lambda:us-east-1:000000000000:function:keep", "{api}", "x", "{id}", "x", "{sid}", "s",
		"{key}", strings.Repeat("a", 64), "{queue}", "keep-q", "{$}", "")
	var out [][2]string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		vars := map[string]string{}
		for _, m := range consts.FindAllStringSubmatch(string(b), -1) {
			vars[m[1]] = m[2]
		}
		for _, m := range plain.FindAllStringSubmatch(string(b), -1) {
			out = append(out, [2]string{m[1], fill.Replace(m[2])})
		}
		for _, m := range joined.FindAllStringSubmatch(string(b), -1) {
			if v, ok := vars[m[2]]; ok {
				out = append(out, [2]string{m[1], fill.Replace(v + m[3])})
			}
		}
		for _, m := range account.FindAllStringSubmatch(string(b), -1) {
			out = append(out, [2]string{m[1], fill.Replace("/000000000000" + m[2])})
		}
	}
	return out
}

// sourceSet returns the first group of every match of re in a source file.
func sourceSet(t *testing.T, file, re string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, file))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range regexp.MustCompile(re).FindAllStringSubmatch(string(b), -1) {
		out = append(out, m[1])
	}
	return out
}

func mustRequest(t *testing.T, method, url string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestSignatureMutations: a valid signed invoke answers 200; the same
// request with one byte of its body, a header, the query, the path,
// the date, the region or the service changed, or signed 6 minutes off
// either way, is refused with 403.
func TestSignatureMutations(t *testing.T) {
	s := startServer(t, "")
	createFunction(t, s.lambda(), "mut", goZip(t), fnOpts{})
	body := []byte(`{"n":1}`)
	sign := func(at time.Time, service, region string) *http.Request {
		r, _ := http.NewRequest("POST", s.Endpoint+"/2015-03-31/functions/mut/invocations?Qualifier=%24LATEST", bytes.NewReader(body))
		r.Header.Set("X-Amz-Invocation-Type", "RequestResponse")
		sum := sha256.Sum256(body)
		if err := v4.NewSigner().SignHTTP(context.Background(), s.root, r, hex.EncodeToString(sum[:]), service, region, at); err != nil {
			t.Fatal(err)
		}
		return r
	}
	if resp := unsigned(t, sign(time.Now(), "lambda", "us-east-1")); resp.StatusCode != 200 {
		t.Fatalf("the valid request: %d", resp.StatusCode)
	}
	withBody := func(r *http.Request, b []byte) *http.Request {
		r.Body = io.NopCloser(bytes.NewReader(b))
		r.ContentLength = int64(len(b))
		return r
	}
	for name, r := range map[string]*http.Request{
		"body byte": withBody(sign(time.Now(), "lambda", "us-east-1"), []byte(`{"n":2}`)),
		"header": func() *http.Request {
			r := sign(time.Now(), "lambda", "us-east-1")
			r.Header.Set("X-Amz-Invocation-Type", "Event")
			return r
		}(),
		"query": func() *http.Request {
			r := sign(time.Now(), "lambda", "us-east-1")
			r.URL.RawQuery = "Qualifier=1"
			return r
		}(),
		"path": func() *http.Request {
			r := sign(time.Now(), "lambda", "us-east-1")
			r.URL.Path = "/2015-03-31/functions/mut2/invocations"
			return r
		}(),
		"date": func() *http.Request {
			r := sign(time.Now(), "lambda", "us-east-1")
			r.Header.Set("X-Amz-Date", time.Now().Add(time.Second).UTC().Format("20060102T150405Z"))
			return r
		}(),
		"region":      sign(time.Now(), "lambda", "us-west-2"),
		"service":     sign(time.Now(), "sqs", "us-east-1"),
		"skew ahead":  sign(time.Now().Add(6*time.Minute), "lambda", "us-east-1"),
		"skew behind": sign(time.Now().Add(-6*time.Minute), "lambda", "us-east-1"),
	} {
		resp := unsigned(t, r)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 403 {
			t.Errorf("%s: %d %s, want 403", name, resp.StatusCode, b)
		}
	}
	if n := s.usage(t, "mut").Requests; n > 1 {
		t.Errorf("refused requests ran the function: %d invocations", n)
	}
}

// TestIAMUsersAndPolicies: a user with an invoke-only policy may invoke
// the one function and do nothing else; the AWS CLI and boto3 use the
// root profile the server wrote; STS names each caller and assumes roles.
func TestIAMUsersAndPolicies(t *testing.T) {
	s := startServer(t, "")
	ctx := context.Background()
	lc := s.lambda()
	createFunction(t, lc, "open", goZip(t), fnOpts{env: map[string]string{"DB_PASSWORD": "hunter2"}})
	createFunction(t, lc, "closed", goZip(t), fnOpts{})
	ic := s.iam()
	if _, err := ic.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("invoker")}); err != nil {
		t.Fatal(err)
	}
	if _, err := ic.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("invoker")}); errorCode(err) != "EntityAlreadyExists" {
		t.Fatalf("second CreateUser: %v", err)
	}
	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"lambda:InvokeFunction","Resource":"arn:aws:lambda:us-east-1:000000000000:function:open"}]}`
	if _, err := ic.PutUserPolicy(ctx, &iam.PutUserPolicyInput{UserName: aws.String("invoker"), PolicyName: aws.String("invoke"), PolicyDocument: aws.String(policy)}); err != nil {
		t.Fatal(err)
	}
	if _, err := ic.PutUserPolicy(ctx, &iam.PutUserPolicyInput{UserName: aws.String("invoker"), PolicyName: aws.String("bad"), PolicyDocument: aws.String(`{"Statement":[{"Effect":"Allow"}]}`)}); errorCode(err) != "MalformedPolicyDocument" {
		t.Fatalf("a malformed policy: %v", err)
	}
	key, err := ic.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("invoker")})
	if err != nil {
		t.Fatal(err)
	}
	userCreds := credentials.NewStaticCredentialsProvider(*key.AccessKey.AccessKeyId, *key.AccessKey.SecretAccessKey, "")
	uc := lambda.New(lambda.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.Endpoint), RetryMaxAttempts: 1, Credentials: userCreds})
	if out, err := uc.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("open"), Payload: []byte(`{}`)}); err != nil || out.StatusCode != 200 {
		t.Fatalf("allowed invoke: %v", err)
	}
	if _, err := uc.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("open"), InvocationType: types.InvocationTypeDryRun}); err != nil {
		t.Fatalf("allowed dry run: %v", err)
	}
	denied := map[string]error{}
	_, denied["invoke closed"] = uc.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("closed")})
	_, denied["dry run closed"] = uc.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("closed"), InvocationType: types.InvocationTypeDryRun})
	_, denied["create"] = uc.CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String("x"), Runtime: "provided.al2023", Handler: aws.String("bootstrap"),
		Role: aws.String("arn:aws:iam::000000000000:role/test"), Code: &types.FunctionCode{ZipFile: goZip(t)}})
	_, denied["update"] = uc.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("open"), Timeout: aws.Int32(9)})
	_, denied["delete"] = uc.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("open")})
	_, denied["read configuration"] = uc.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("open")})
	_, denied["list"] = uc.ListFunctions(ctx, &lambda.ListFunctionsInput{})
	uic := iam.New(iam.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.Endpoint), RetryMaxAttempts: 1, Credentials: userCreds})
	_, denied["iam create user"] = uic.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("escalate")})
	_, denied["iam put own policy"] = uic.PutUserPolicy(ctx, &iam.PutUserPolicyInput{UserName: aws.String("invoker"), PolicyName: aws.String("all"),
		PolicyDocument: aws.String(`{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`)})
	for name, err := range denied {
		if httpStatus(err) != 403 || !strings.Contains(errorCode(err), "AccessDenied") {
			t.Errorf("%s: %v, want 403 AccessDenied", name, err)
		} else if !strings.Contains(err.Error(), "user/invoker is not authorized to perform") {
			t.Errorf("%s: message %q does not name the caller and action", name, err)
		}
	}
	// GetFunction without GetFunctionConfiguration: no environment values.
	if _, err := ic.PutUserPolicy(ctx, &iam.PutUserPolicyInput{UserName: aws.String("invoker"), PolicyName: aws.String("get"),
		PolicyDocument: aws.String(`{"Statement":[{"Effect":"Allow","Action":"lambda:GetFunction","Resource":"arn:aws:lambda:us-east-1:000000000000:function:open"}]}`)}); err != nil {
		t.Fatal(err)
	}
	got, err := uc.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("open")})
	if err != nil || got.Configuration.Environment != nil {
		t.Fatalf("GetFunction without GetFunctionConfiguration: %v %+v", err, got)
	}
	if got, err := lc.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("open")}); err != nil || got.Configuration.Environment.Variables["DB_PASSWORD"] != "hunter2" {
		t.Fatalf("GetFunction as the root: %v", err)
	}
	// STS: who am I, as the user and as the root.
	usts := sts.New(sts.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.Endpoint), Credentials: userCreds})
	id, err := usts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil || aws.ToString(id.Arn) != "arn:aws:iam::000000000000:user/invoker" || aws.ToString(id.Account) != "000000000000" {
		t.Fatalf("GetCallerIdentity as the user: %+v %v", id, err)
	}
	// AssumeRole: a role that trusts the user, and the user allowed to assume it.
	trust := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:user/invoker"},"Action":"sts:AssumeRole"}]}`
	if _, err := ic.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("reader"), AssumeRolePolicyDocument: aws.String(trust)}); err != nil {
		t.Fatal(err)
	}
	if _, err := ic.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: aws.String("reader"), PolicyArn: aws.String("arn:aws:iam::aws:policy/ReadOnlyAccess")}); err != nil {
		t.Fatal(err)
	}
	if _, err := usts.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::000000000000:role/reader"), RoleSessionName: aws.String("s1")}); httpStatus(err) != 403 {
		t.Fatalf("AssumeRole without sts:AssumeRole allowed: %v", err)
	}
	if _, err := ic.PutUserPolicy(ctx, &iam.PutUserPolicyInput{UserName: aws.String("invoker"), PolicyName: aws.String("assume"),
		PolicyDocument: aws.String(`{"Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"arn:aws:iam::000000000000:role/reader"}]}`)}); err != nil {
		t.Fatal(err)
	}
	ar, err := usts.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::000000000000:role/reader"), RoleSessionName: aws.String("s1")})
	if err != nil {
		t.Fatal(err)
	}
	rc := credentials.NewStaticCredentialsProvider(*ar.Credentials.AccessKeyId, *ar.Credentials.SecretAccessKey, *ar.Credentials.SessionToken)
	rl := lambda.New(lambda.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.Endpoint), RetryMaxAttempts: 1, Credentials: rc})
	if _, err := rl.ListFunctions(ctx, &lambda.ListFunctionsInput{}); err != nil {
		t.Fatalf("the read-only role cannot list: %v", err)
	}
	if _, err := rl.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("open")}); httpStatus(err) != 403 {
		t.Fatalf("the read-only role deleted a function: %v", err)
	}
	rid, err := sts.New(sts.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.Endpoint), Credentials: rc}).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil || aws.ToString(rid.Arn) != "arn:aws:sts::000000000000:assumed-role/reader/s1" {
		t.Fatalf("GetCallerIdentity as the role: %+v %v", rid, err)
	}
	// A forged session token is refused.
	forged := credentials.NewStaticCredentialsProvider(*ar.Credentials.AccessKeyId, *ar.Credentials.SecretAccessKey, *ar.Credentials.SessionToken+"x")
	if _, err := lambda.New(lambda.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.Endpoint), RetryMaxAttempts: 1, Credentials: forged}).ListFunctions(ctx, &lambda.ListFunctionsInput{}); httpStatus(err) != 403 {
		t.Fatalf("a forged session token: %v", err)
	}
	// Deleting a user with keys is a conflict; without, it goes.
	if _, err := ic.DeleteUser(ctx, &iam.DeleteUserInput{UserName: aws.String("invoker")}); errorCode(err) != "DeleteConflict" {
		t.Fatalf("DeleteUser with keys: %v", err)
	}
	// The AWS CLI with the profile the server wrote, as the README says.
	env := append(os.Environ(), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(s.dataDir, "credentials"),
		"AWS_CONFIG_FILE="+filepath.Join(s.dataDir, "config"), "AWS_PROFILE=stratus", "AWS_PAGER=")
	out, err := runCmd(t, env, "aws", "--endpoint-url", s.Endpoint, "sts", "get-caller-identity")
	if err != nil || !strings.Contains(out, "arn:aws:iam::000000000000:root") {
		t.Fatalf("aws sts get-caller-identity: %v\n%s", err, out)
	}
	out, err = runCmd(t, env, "aws", "--endpoint-url", s.Endpoint, "iam", "get-user-policy", "--user-name", "invoker", "--policy-name", "invoke")
	if err != nil || !strings.Contains(out, "lambda:InvokeFunction") {
		t.Fatalf("aws iam get-user-policy: %v\n%s", err, out)
	}
	out, err = runCmd(t, env, "aws", "--endpoint-url", s.Endpoint, "iam", "list-attached-role-policies", "--role-name", "reader")
	if err != nil || !strings.Contains(out, "ReadOnlyAccess") {
		t.Fatalf("aws iam list-attached-role-policies: %v\n%s", err, out)
	}
	script := filepath.Join(t.TempDir(), "who.py")
	if err := os.WriteFile(script, []byte("import boto3, sys\nprint(boto3.client('iam', endpoint_url=sys.argv[1]).list_users()['Users'][0]['UserName'])\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runCmd(t, env, boto3Python(t), script, s.Endpoint); err != nil || strings.TrimSpace(out) != "invoker" {
		t.Fatalf("boto3 with the root profile: %v\n%s", err, out)
	}
}

// TestFunctionRole: a function runs with its execution role's
// credentials: its SDK may send to the one queue the role allows and is
// refused everything else the attack list tries. A role Lambda may not
// assume is refused at CreateFunction.
func TestFunctionRole(t *testing.T) {
	s := startServer(t, "")
	ctx := context.Background()
	ic := s.iam()
	q := s.sqs()
	allowed := createQueue(t, q, "role-allowed", nil)
	other := createQueue(t, q, "role-other", nil)
	if _, err := ic.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("sender"), AssumeRolePolicyDocument: aws.String(lambdaTrust)}); err != nil {
		t.Fatal(err)
	}
	send := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sqs:SendMessage","Resource":"arn:aws:sqs:us-east-1:000000000000:role-allowed"}]}`
	if _, err := ic.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String("sender"), PolicyName: aws.String("send"), PolicyDocument: aws.String(send)}); err != nil {
		t.Fatal(err)
	}
	if _, err := ic.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: aws.String("sender"), PolicyArn: aws.String("arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole")}); err != nil {
		t.Fatal(err)
	}
	lc := s.lambda()
	createFunction(t, lc, "victim", goZip(t), fnOpts{env: map[string]string{"SECRET": "s3cr3t"}})
	probe := filepath.Join(t.TempDir(), "roleprobe")
	if err := goBuildPlain(probe, "./internal/e2e/testdata/roleprobe"); err != nil {
		t.Fatal(err)
	}
	code, err := os.ReadFile(probe)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lc.CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String("probe"), Runtime: "provided.al2023", Handler: aws.String("bootstrap"),
		Role: aws.String("arn:aws:iam::000000000000:role/sender"), Timeout: aws.Int32(30), Code: &types.FunctionCode{ZipFile: makeZip(t, map[string][]byte{"bootstrap": code})}}); err != nil {
		t.Fatal(err)
	}
	vf, err := lc.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("victim")})
	if err != nil {
		t.Fatal(err)
	}
	codePath, _, _ := strings.Cut(strings.TrimPrefix(aws.ToString(vf.Code.Location), s.Endpoint), "?")
	ev, _ := json.Marshal(map[string]string{"allowed": allowed, "other": other, "victim": "victim", "code": codePath})
	out := invoke(t, lc, "probe", string(ev))
	if out.FunctionError != nil {
		t.Fatalf("probe failed: %s", out.Payload)
	}
	var got map[string]string
	if err := json.Unmarshal(out.Payload, &got); err != nil {
		t.Fatalf("%v: %s", err, out.Payload)
	}
	want := map[string]string{
		"send-allowed": "ok", "send-other": "AccessDenied", "receive-other": "AccessDenied", "purge-other": "AccessDenied", "list-queues": "AccessDenied",
		"list-functions": "AccessDeniedException", "get-victim": "AccessDeniedException", "update-victim": "AccessDeniedException",
		"delete-victim": "AccessDeniedException", "invoke-victim": "AccessDeniedException",
		"usage": "403", "metrics": "403", "logs": "403", "unsigned-list": "403", "code": "403", "pprof": "403",
		"url-victim": "AccessDeniedException", "permission-victim": "AccessDeniedException", "schedule-victim": "AccessDeniedException",
		"escalate-role": "AccessDenied",
	}
	for k, v := range want {
		if got[k] != v && !(v == "AccessDenied" && got[k] == "AccessDeniedException") {
			t.Errorf("%s from inside the function: %q, want %q", k, got[k], v)
		}
	}
	msgs, err := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(allowed), WaitTimeSeconds: 1})
	if err != nil || len(msgs.Messages) != 1 {
		t.Fatalf("the allowed send did not arrive: %v %v", msgs, err)
	}
	if msgs, _ := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(other)}); len(msgs.Messages) != 0 {
		t.Fatal("a refused send arrived")
	}
	// Triggers and destinations act with the function's role: checked
	// when they are configured.
	otherARN, allowedARN := "arn:aws:sqs:us-east-1:000000000000:role-other", "arn:aws:sqs:us-east-1:000000000000:role-allowed"
	if _, err := lc.CreateEventSourceMapping(ctx, &lambda.CreateEventSourceMappingInput{FunctionName: aws.String("probe"), EventSourceArn: aws.String(otherARN)}); errorCode(err) != "InvalidParameterValueException" ||
		!strings.Contains(err.Error(), "ReceiveMessage") {
		t.Errorf("a mapping the role cannot poll: %v", err)
	}
	if _, err := lc.PutFunctionEventInvokeConfig(ctx, &lambda.PutFunctionEventInvokeConfigInput{FunctionName: aws.String("probe"),
		DestinationConfig: &types.DestinationConfig{OnFailure: &types.OnFailure{Destination: aws.String(otherARN)}}}); errorCode(err) != "InvalidParameterValueException" {
		t.Errorf("a destination the role cannot send to: %v", err)
	}
	if _, err := lc.PutFunctionEventInvokeConfig(ctx, &lambda.PutFunctionEventInvokeConfigInput{FunctionName: aws.String("probe"),
		DestinationConfig: &types.DestinationConfig{OnFailure: &types.OnFailure{Destination: aws.String(allowedARN)}}}); err != nil {
		t.Errorf("a destination the role may send to: %v", err)
	}
	if _, err := lc.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("probe"),
		DeadLetterConfig: &types.DeadLetterConfig{TargetArn: aws.String(otherARN)}}); errorCode(err) != "InvalidParameterValueException" {
		t.Errorf("a dead-letter queue the role cannot send to: %v", err)
	}
	// The role must exist and trust Lambda.
	if _, err := ic.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("ec2-only"),
		AssumeRolePolicyDocument: aws.String(`{"Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`)}); err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{"arn:aws:iam::000000000000:role/ec2-only", "arn:aws:iam::000000000000:role/missing"} {
		_, err := lc.CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String("norole"), Runtime: "provided.al2023", Handler: aws.String("bootstrap"),
			Role: aws.String(role), Code: &types.FunctionCode{ZipFile: goZip(t)}})
		var ipv *types.InvalidParameterValueException
		if !errors.As(err, &ipv) || !strings.Contains(err.Error(), "cannot be assumed by Lambda") {
			t.Errorf("role %s: %v", role, err)
		}
	}
}

// TestResourcePolicies: AddPermission, GetPolicy and RemovePermission;
// a function URL with AuthType AWS_IAM answers signed callers allowed
// lambda:InvokeFunctionUrl (by their own policy or the function's) and
// no one else; the function's policy lets a user invoke it.
func TestResourcePolicies(t *testing.T) {
	s := startServer(t, "")
	ctx := context.Background()
	lc := s.lambda()
	createFunction(t, lc, "guarded", makeZip(t, map[string][]byte{"index.mjs": []byte(urlFunction)}), fnOpts{runtime: "nodejs20.x", handler: "index.handler"})
	if _, err := lc.GetPolicy(ctx, &lambda.GetPolicyInput{FunctionName: aws.String("guarded")}); errorCode(err) != "ResourceNotFoundException" {
		t.Fatalf("GetPolicy with none: %v", err)
	}
	cfg, err := lc.CreateFunctionUrlConfig(ctx, &lambda.CreateFunctionUrlConfigInput{FunctionName: aws.String("guarded"), AuthType: types.FunctionUrlAuthTypeAwsIam})
	if err != nil {
		t.Fatal(err)
	}
	url := aws.ToString(cfg.FunctionUrl) + "echo?x=1"
	var lastBody string
	get := func(c aws.Credentials) int {
		r, _ := http.NewRequest("GET", url, nil)
		if c.AccessKeyID != "" {
			sum := sha256.Sum256(nil)
			if err := v4.NewSigner().SignHTTP(ctx, c, r, hex.EncodeToString(sum[:]), "lambda", "us-east-1", time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		resp := unsigned(t, r)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		lastBody = string(b)
		return resp.StatusCode
	}
	if code := get(aws.Credentials{}); code != 403 {
		t.Errorf("unsigned request to an AWS_IAM URL: %d", code)
	}
	if code := get(s.root); code != 200 {
		t.Errorf("the root, signed: %d", code)
	}
	ic := s.iam()
	newUser := func(name string) aws.Credentials {
		if _, err := ic.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String(name)}); err != nil {
			t.Fatal(err)
		}
		k, err := ic.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		return aws.Credentials{AccessKeyID: *k.AccessKey.AccessKeyId, SecretAccessKey: *k.AccessKey.SecretAccessKey}
	}
	alice, bob := newUser("alice"), newUser("bob")
	var names []string
	for p := iam.NewListUsersPaginator(ic, &iam.ListUsersInput{MaxItems: aws.Int32(1)}); p.HasMorePages(); {
		pg, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range pg.Users {
			names = append(names, aws.ToString(u.UserName))
		}
	}
	if strings.Join(names, ",") != "alice,bob" {
		t.Errorf("ListUsers one at a time: %v", names)
	}
	if code := get(alice); code != 403 {
		t.Errorf("a user with no permission: %d", code)
	}
	if _, err := ic.PutUserPolicy(ctx, &iam.PutUserPolicyInput{UserName: aws.String("alice"), PolicyName: aws.String("url"),
		PolicyDocument: aws.String(`{"Statement":[{"Effect":"Allow","Action":"lambda:InvokeFunctionUrl","Resource":"arn:aws:lambda:us-east-1:000000000000:function:guarded"}]}`)}); err != nil {
		t.Fatal(err)
	}
	if code := get(alice); code != 200 {
		t.Errorf("a user allowed by her own policy: %d", code)
	}
	if !strings.Contains(lastBody, `"userArn":"arn:aws:iam::000000000000:user/alice"`) {
		t.Errorf("the event does not name the signed caller in requestContext.authorizer.iam: %s", lastBody)
	}
	// Bob is let in by the function's policy.
	add := func(sid, action, principal string) error {
		_, err := lc.AddPermission(ctx, &lambda.AddPermissionInput{FunctionName: aws.String("guarded"), StatementId: aws.String(sid),
			Action: aws.String(action), Principal: aws.String(principal)})
		return err
	}
	if err := add("bob-url", "lambda:InvokeFunctionUrl", "arn:aws:iam::000000000000:user/bob"); err != nil {
		t.Fatal(err)
	}
	if err := add("bob-url", "lambda:InvokeFunctionUrl", "arn:aws:iam::000000000000:user/bob"); errorCode(err) != "ResourceConflictException" {
		t.Fatalf("a second statement with one id: %v", err)
	}
	if err := add("bad", "lambda:InvokeFunctionUrl", "not a principal"); errorCode(err) != "InvalidParameterValueException" {
		t.Fatalf("a bad principal: %v", err)
	}
	if code := get(bob); code != 200 {
		t.Errorf("a user the function's policy names: %d", code)
	}
	bl := lambda.New(lambda.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.Endpoint), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(bob.AccessKeyID, bob.SecretAccessKey, "")})
	if _, err := bl.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("guarded")}); httpStatus(err) != 403 {
		t.Fatalf("bob invoked without lambda:InvokeFunction: %v", err)
	}
	if err := add("bob-invoke", "lambda:InvokeFunction", "arn:aws:iam::000000000000:user/bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := bl.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("guarded")}); err != nil {
		t.Fatalf("bob, allowed by the function's policy: %v", err)
	}
	pol, err := lc.GetPolicy(ctx, &lambda.GetPolicyInput{FunctionName: aws.String("guarded")})
	if err != nil || !strings.Contains(aws.ToString(pol.Policy), `"Sid":"bob-url"`) || !strings.Contains(aws.ToString(pol.Policy), `"Sid":"bob-invoke"`) {
		t.Fatalf("GetPolicy: %v %v", pol, err)
	}
	if _, err := lc.RemovePermission(ctx, &lambda.RemovePermissionInput{FunctionName: aws.String("guarded"), StatementId: aws.String("bob-url")}); err != nil {
		t.Fatal(err)
	}
	if _, err := lc.RemovePermission(ctx, &lambda.RemovePermissionInput{FunctionName: aws.String("guarded"), StatementId: aws.String("bob-url")}); errorCode(err) != "ResourceNotFoundException" {
		t.Fatalf("removing a statement twice: %v", err)
	}
	if code := get(bob); code != 403 {
		t.Errorf("bob after his statement went: %d", code)
	}
	// The AWS CLI's add-permission, as tutorials write it, opens a NONE URL.
	createFunction(t, lc, "public", goZip(t), fnOpts{})
	pub, err := lc.CreateFunctionUrlConfig(ctx, &lambda.CreateFunctionUrlConfigInput{FunctionName: aws.String("public"), AuthType: types.FunctionUrlAuthTypeNone})
	if err != nil {
		t.Fatal(err)
	}
	env := s.clientEnv(t.TempDir())
	for _, args := range [][]string{
		{"--statement-id", "url", "--action", "lambda:InvokeFunctionUrl", "--principal", "*", "--function-url-auth-type", "NONE"},
		{"--statement-id", "invoke", "--action", "lambda:InvokeFunction", "--principal", "*", "--invoked-via-function-url"},
	} {
		out, err := runCmd(t, env, "aws", append([]string{"--endpoint-url", s.Endpoint, "lambda", "add-permission", "--function-name", "public"}, args...)...)
		if err != nil {
			if strings.Contains(out, "invoked-via-function-url") {
				// An older CLI without the flag: the SDK's field instead.
				if _, err := lc.AddPermission(ctx, &lambda.AddPermissionInput{FunctionName: aws.String("public"), StatementId: aws.String("invoke"),
					Action: aws.String("lambda:InvokeFunction"), Principal: aws.String("*"), InvokedViaFunctionUrl: aws.Bool(true)}); err != nil {
					t.Fatal(err)
				}
				continue
			}
			t.Fatalf("aws lambda add-permission: %v\n%s", err, out)
		}
	}
	resp, err := plainClient.Get(aws.ToString(pub.FunctionUrl))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the public URL: %v %v", resp, err)
	}
	resp.Body.Close()
}

// TestRatePerCaller: with --rate-per-caller, a caller over its rate gets
// the protocol's throttling error with Retry-After, and other callers are
// not slowed by it.
func TestRatePerCaller(t *testing.T) {
	s := startServer(t, "", "--rate-per-caller", "5")
	ctx := context.Background()
	ic := s.iam()
	keys := map[string]aws.Credentials{}
	for _, name := range []string{"noisy", "quiet"} {
		if _, err := ic.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String(name)}); err != nil {
			t.Fatal(err)
		}
		if _, err := ic.AttachUserPolicy(ctx, &iam.AttachUserPolicyInput{UserName: aws.String(name), PolicyArn: aws.String("arn:aws:iam::aws:policy/ReadOnlyAccess")}); err != nil {
			t.Fatal(err)
		}
		k, err := ic.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		keys[name] = aws.Credentials{AccessKeyID: *k.AccessKey.AccessKeyId, SecretAccessKey: *k.AccessKey.SecretAccessKey}
	}
	client := func(c aws.Credentials) *lambda.Client {
		return lambda.New(lambda.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.Endpoint), RetryMaxAttempts: 1,
			Credentials: credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, "")})
	}
	noisy, quiet := client(keys["noisy"]), client(keys["quiet"])
	throttled := 0
	for range 40 {
		_, err := noisy.ListFunctions(ctx, &lambda.ListFunctionsInput{})
		if err == nil {
			continue
		}
		var tm *types.TooManyRequestsException
		if !errors.As(err, &tm) || httpStatus(err) != 429 {
			t.Fatalf("over the rate: %v", err)
		}
		throttled++
	}
	if throttled == 0 {
		t.Fatal("40 requests at once were never throttled at 5 per second")
	}
	if _, err := quiet.ListFunctions(ctx, &lambda.ListFunctionsInput{}); err != nil {
		t.Fatalf("another caller was slowed: %v", err)
	}
	r, _ := http.NewRequest("GET", s.Endpoint+"/2015-03-31/functions/", nil)
	sum := sha256.Sum256(nil)
	for range 20 {
		r2 := r.Clone(ctx)
		_ = v4.NewSigner().SignHTTP(ctx, keys["noisy"], r2, hex.EncodeToString(sum[:]), "lambda", "us-east-1", time.Now())
		resp := unsigned(t, r2)
		resp.Body.Close()
		if resp.StatusCode == 429 {
			if resp.Header.Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
			return
		}
	}
	t.Fatal("no 429 on the wire")
}
