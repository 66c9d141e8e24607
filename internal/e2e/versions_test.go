package e2e

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

func TestVersionsAndAliases(t *testing.T) {
	s := startServer(t, "")
	c := s.lambda()
	ctx := context.Background()
	createFunction(t, c, "ver", goZip(t), fnOpts{env: map[string]string{"STAGE": "one"}})

	v1, err := c.PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: aws.String("ver"), Description: aws.String("first")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(v1.Version) != "1" || aws.ToString(v1.FunctionArn) != "arn:aws:lambda:us-east-1:000000000000:function:ver:1" {
		t.Fatalf("version 1: %s %s", aws.ToString(v1.Version), aws.ToString(v1.FunctionArn))
	}
	// Nothing changed: publishing again returns version 1.
	again, err := c.PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: aws.String("ver")})
	if err != nil || aws.ToString(again.Version) != "1" {
		t.Fatalf("republish: %v %s", err, aws.ToString(again.Version))
	}
	if _, err := c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("ver"), Environment: &types.Environment{Variables: map[string]string{"STAGE": "two"}}}); err != nil {
		t.Fatal(err)
	}
	v2, err := c.PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: aws.String("ver")})
	if err != nil || aws.ToString(v2.Version) != "2" {
		t.Fatalf("version 2: %v", err)
	}

	// Each version keeps its snapshot; $LATEST moves on.
	if _, err := c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("ver"), Environment: &types.Environment{Variables: map[string]string{"STAGE": "latest"}}}); err != nil {
		t.Fatal(err)
	}
	for q, want := range map[string]string{"1": "one", "2": "two", "$LATEST": "latest"} {
		out, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("ver"), Qualifier: aws.String(q), Payload: []byte(`{"env":"STAGE"}`)})
		if err != nil {
			t.Fatal(err)
		}
		if r := decodeReply(t, out.Payload); r.EnvValue != want || aws.ToString(out.ExecutedVersion) != q {
			t.Errorf("qualifier %s: env %q executed %q", q, r.EnvValue, aws.ToString(out.ExecutedVersion))
		}
	}
	// name:qualifier works as well.
	out := invoke(t, c, "ver:1", `{"env":"STAGE"}`)
	if decodeReply(t, out.Payload).EnvValue != "one" {
		t.Errorf("ver:1: %s", out.Payload)
	}

	vs, err := c.ListVersionsByFunction(ctx, &lambda.ListVersionsByFunctionInput{FunctionName: aws.String("ver")})
	if err != nil || len(vs.Versions) != 3 || aws.ToString(vs.Versions[0].Version) != "$LATEST" || aws.ToString(vs.Versions[2].Version) != "2" {
		t.Fatalf("versions: %v %+v", err, vs)
	}

	// Aliases.
	al, err := c.CreateAlias(ctx, &lambda.CreateAliasInput{FunctionName: aws.String("ver"), Name: aws.String("prod"), FunctionVersion: aws.String("1")})
	if err != nil || aws.ToString(al.AliasArn) != "arn:aws:lambda:us-east-1:000000000000:function:ver:prod" {
		t.Fatalf("create alias: %v %+v", err, al)
	}
	if _, err := c.CreateAlias(ctx, &lambda.CreateAliasInput{FunctionName: aws.String("ver"), Name: aws.String("prod"), FunctionVersion: aws.String("1")}); errorCode(err) != "ResourceConflictException" {
		t.Errorf("duplicate alias: %v", err)
	}
	if _, err := c.CreateAlias(ctx, &lambda.CreateAliasInput{FunctionName: aws.String("ver"), Name: aws.String("bad"), FunctionVersion: aws.String("9")}); errorCode(err) != "ResourceNotFoundException" {
		t.Errorf("alias to a missing version: %v", err)
	}
	out, err = c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("ver:prod"), Payload: []byte(`{"env":"STAGE"}`)})
	if err != nil || aws.ToString(out.ExecutedVersion) != "1" || decodeReply(t, out.Payload).EnvValue != "one" {
		t.Fatalf("invoke alias: %v %s", err, out.Payload)
	}

	// Weighted routing: about half to version 2.
	if _, err := c.UpdateAlias(ctx, &lambda.UpdateAliasInput{FunctionName: aws.String("ver"), Name: aws.String("prod"),
		RoutingConfig: &types.AliasRoutingConfiguration{AdditionalVersionWeights: map[string]float64{"2": 0.5}}}); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetAlias(ctx, &lambda.GetAliasInput{FunctionName: aws.String("ver"), Name: aws.String("prod")})
	if err != nil || got.RoutingConfig == nil || got.RoutingConfig.AdditionalVersionWeights["2"] != 0.5 {
		t.Fatalf("get alias: %v %+v", err, got)
	}
	counts := map[string]int{}
	for range 100 {
		out, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("ver"), Qualifier: aws.String("prod")})
		if err != nil {
			t.Fatal(err)
		}
		counts[aws.ToString(out.ExecutedVersion)]++
	}
	if counts["1"] < 25 || counts["2"] < 25 || counts["1"]+counts["2"] != 100 {
		t.Errorf("weighted routing split %v", counts)
	}

	list, err := c.ListAliases(ctx, &lambda.ListAliasesInput{FunctionName: aws.String("ver")})
	if err != nil || len(list.Aliases) != 1 {
		t.Errorf("list aliases: %v %+v", err, list)
	}
	// A version an alias uses cannot be deleted; after the alias goes, it can.
	if _, err := c.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("ver"), Qualifier: aws.String("2")}); errorCode(err) != "ResourceConflictException" {
		t.Errorf("delete a version in use: %v", err)
	}
	if _, err := c.DeleteAlias(ctx, &lambda.DeleteAliasInput{FunctionName: aws.String("ver"), Name: aws.String("prod")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("ver"), Qualifier: aws.String("2")}); err != nil {
		t.Errorf("delete version 2: %v", err)
	}
	if _, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("ver"), Qualifier: aws.String("2")}); errorCode(err) != "ResourceNotFoundException" {
		t.Errorf("invoke deleted version: %v", err)
	}
	if _, err := c.GetAlias(ctx, &lambda.GetAliasInput{FunctionName: aws.String("ver"), Name: aws.String("prod")}); errorCode(err) != "ResourceNotFoundException" {
		t.Errorf("deleted alias: %v", err)
	}

	// Versions survive a restart.
	s.kill()
	s.restart()
	c = s.lambda()
	out, err = c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("ver"), Qualifier: aws.String("1"), Payload: []byte(`{"env":"STAGE"}`)})
	if err != nil || decodeReply(t, out.Payload).EnvValue != "one" {
		t.Errorf("version 1 after restart: %v %s", err, out.Payload)
	}
}

func TestReservedConcurrency(t *testing.T) {
	s := startServer(t, "", "--max-concurrency", "50")
	// No client retries: the SDK retries throttles, which would hide them.
	c := lambda.New(lambda.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.Endpoint), Credentials: s.lambda().Options().Credentials, RetryMaxAttempts: 1,
		HTTPClient: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 100}}})
	ctx := context.Background()
	createFunction(t, c, "capped", goZip(t), fnOpts{timeout: 10})
	createFunction(t, c, "free", goZip(t), fnOpts{timeout: 10})

	if _, err := c.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{FunctionName: aws.String("capped"), ReservedConcurrentExecutions: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetFunctionConcurrency(ctx, &lambda.GetFunctionConcurrencyInput{FunctionName: aws.String("capped")})
	if err != nil || aws.ToInt32(got.ReservedConcurrentExecutions) != 2 {
		t.Fatalf("get concurrency: %v %+v", err, got)
	}
	// Leaving less than the unreserved floor is refused.
	if _, err := c.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{FunctionName: aws.String("free"), ReservedConcurrentExecutions: aws.Int32(47)}); errorCode(err) != "InvalidParameterValueException" {
		t.Errorf("over-reservation: %v", err)
	}
	settings, err := c.GetAccountSettings(ctx, &lambda.GetAccountSettingsInput{})
	if err != nil || settings.AccountLimit.ConcurrentExecutions != 50 || aws.ToInt32(settings.AccountLimit.UnreservedConcurrentExecutions) != 48 {
		t.Errorf("account settings: %v %+v", err, settings.AccountLimit)
	}

	// Five at once against a reservation of two: two run, three are throttled.
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[string]int{}
	for range 5 {
		wg.Go(func() {
			_, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("capped"), Payload: []byte(`{"sleepMs":1500}`)})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				codes[errorCode(err)]++
				return
			}
			codes["ok"]++
		})
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()
	if codes["ok"] != 2 || codes["TooManyRequestsException"] != 3 {
		t.Errorf("outcomes %v", codes)
	}
	// The Reason and Retry-After are on the wire.
	rawInvoke(t, s, "capped")

	// Zero stops the function; others are unaffected.
	if _, err := c.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{FunctionName: aws.String("capped"), ReservedConcurrentExecutions: aws.Int32(0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("capped")}); errorCode(err) != "TooManyRequestsException" || httpStatus(err) != 429 {
		t.Errorf("reserved 0: %v", err)
	}
	invoke(t, c, "free", `{}`)
	if _, err := c.DeleteFunctionConcurrency(ctx, &lambda.DeleteFunctionConcurrencyInput{FunctionName: aws.String("capped")}); err != nil {
		t.Fatal(err)
	}
	invoke(t, c, "capped", `{}`)

	// The account limit bounds unreserved functions.
	wg = sync.WaitGroup{}
	codes = map[string]int{}
	for i := range 55 {
		wg.Go(func() {
			_, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("free"), Payload: []byte(`{"sleepMs":2000,"name":"` + strconv.Itoa(i) + `"}`)})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				codes[errorCode(err)]++
				return
			}
			codes["ok"]++
		})
	}
	wg.Wait()
	if codes["ok"] != 50 || codes["TooManyRequestsException"] != 5 {
		t.Errorf("account limit outcomes %v", codes)
	}
}

// rawInvoke checks the throttle's wire form on a function with reserved 0.
func rawInvoke(t *testing.T, s *server, fn string) {
	t.Helper()
	c := s.lambda()
	if _, err := c.PutFunctionConcurrency(context.Background(), &lambda.PutFunctionConcurrencyInput{FunctionName: aws.String(fn), ReservedConcurrentExecutions: aws.Int32(0)}); err != nil {
		t.Fatal(err)
	}
	resp, err := httpPost(s.Endpoint+"/2015-03-31/functions/"+fn+"/invocations", "{}")
	if err != nil {
		t.Fatal(err)
	}
	if resp.status != 429 || resp.header.Get("Retry-After") == "" || !strings.Contains(resp.body, `"Reason":"ReservedFunctionConcurrentInvocationLimitExceeded"`) || resp.header.Get("X-Amzn-ErrorType") != "TooManyRequestsException" {
		t.Errorf("throttle on the wire: %d %v %s", resp.status, resp.header, resp.body)
	}
	if _, err := c.DeleteFunctionConcurrency(context.Background(), &lambda.DeleteFunctionConcurrencyInput{FunctionName: aws.String(fn)}); err != nil {
		t.Fatal(err)
	}
}

// TestScaleRate: with --scale-rate 3, a function starts at most 3 new
// instances per 10 seconds; the fourth concurrent request is throttled.
func TestScaleRate(t *testing.T) {
	s := startServer(t, "", "--scale-rate", "3")
	c := lambda.New(lambda.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.Endpoint), Credentials: s.lambda().Options().Credentials, RetryMaxAttempts: 1})
	createFunction(t, c, "rate", goZip(t), fnOpts{timeout: 10})
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[string]int{}
	for range 5 {
		wg.Go(func() {
			_, err := c.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("rate"), Payload: []byte(`{"sleepMs":1000}`)})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				codes[errorCode(err)]++
				return
			}
			codes["ok"]++
		})
	}
	wg.Wait()
	if codes["ok"] != 3 || codes["TooManyRequestsException"] != 2 {
		t.Errorf("outcomes %v", codes)
	}
	// Warm instances are not new ones: sequential requests all pass.
	for range 5 {
		invoke(t, c, "rate", `{}`)
	}
}
