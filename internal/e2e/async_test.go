package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

const recorder = `
import json

def handler(event, context):
    print("RECORD " + json.dumps(event))
    return {"ok": True}
`

func logsOf(t *testing.T, s *server, fn string) string {
	return getBody(t, s.Endpoint+"/stratus/v1/functions/"+fn+"/logs?since=1h")
}

func TestAsyncInvoke(t *testing.T) {
	s := startServer(t, "", "--async-retry-delay", "300ms")
	c := s.lambda()
	ctx := context.Background()
	createFunction(t, c, "async-go", goZip(t), fnOpts{})
	dest := createFunction(t, c, "async-dest", makeZip(t, map[string][]byte{"app.py": []byte(recorder)}), fnOpts{runtime: "python3.11", handler: "app.handler"})

	out, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("async-go"), InvocationType: types.InvocationTypeEvent, Payload: []byte(`{"print":"async-marker-1"}`)})
	if err != nil || out.StatusCode != 202 {
		t.Fatalf("event invoke: %v %d", err, out.StatusCode)
	}
	waitFor(t, 10*time.Second, "the event to run", func() bool { return strings.Contains(logsOf(t, s, "async-go"), "async-marker-1") })

	// Configuration API and its validation.
	if _, err := c.GetFunctionEventInvokeConfig(ctx, &lambda.GetFunctionEventInvokeConfigInput{FunctionName: aws.String("async-go")}); errorCode(err) != "ResourceNotFoundException" {
		t.Errorf("missing config: %v", err)
	}
	if _, err := c.PutFunctionEventInvokeConfig(ctx, &lambda.PutFunctionEventInvokeConfigInput{FunctionName: aws.String("async-go"), MaximumRetryAttempts: aws.Int32(3)}); errorCode(err) != "InvalidParameterValueException" {
		t.Errorf("3 retries: %v", err)
	}
	if _, err := c.PutFunctionEventInvokeConfig(ctx, &lambda.PutFunctionEventInvokeConfigInput{FunctionName: aws.String("async-go"),
		DestinationConfig: &types.DestinationConfig{OnFailure: &types.OnFailure{Destination: aws.String("arn:aws:sns:us-east-1:000000000000:topic")}}}); errorCode(err) != "InvalidParameterValueException" {
		t.Errorf("topic destination: %v", err)
	}
	cfg, err := c.PutFunctionEventInvokeConfig(ctx, &lambda.PutFunctionEventInvokeConfigInput{FunctionName: aws.String("async-go"), MaximumRetryAttempts: aws.Int32(1),
		DestinationConfig: &types.DestinationConfig{OnFailure: &types.OnFailure{Destination: dest.FunctionArn}}})
	if err != nil || aws.ToInt32(cfg.MaximumRetryAttempts) != 1 || aws.ToString(cfg.DestinationConfig.OnFailure.Destination) != aws.ToString(dest.FunctionArn) {
		t.Fatalf("put config: %v %+v", err, cfg)
	}
	upd, err := c.UpdateFunctionEventInvokeConfig(ctx, &lambda.UpdateFunctionEventInvokeConfigInput{FunctionName: aws.String("async-go"),
		DestinationConfig: &types.DestinationConfig{OnSuccess: &types.OnSuccess{Destination: dest.FunctionArn}}})
	if err != nil || aws.ToInt32(upd.MaximumRetryAttempts) != 1 || aws.ToString(upd.DestinationConfig.OnSuccess.Destination) == "" {
		t.Fatalf("update config: %v %+v", err, upd)
	}
	list, err := c.ListFunctionEventInvokeConfigs(ctx, &lambda.ListFunctionEventInvokeConfigsInput{FunctionName: aws.String("async-go")})
	if err != nil || len(list.FunctionEventInvokeConfigs) != 1 {
		t.Errorf("list: %v", err)
	}

	// A failing event is retried once, then reported to the failure destination.
	if _, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("async-go"), InvocationType: types.InvocationTypeEvent, Payload: []byte(`{"fail":"error","name":"doomed"}`)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the failure record", func() bool {
		l := logsOf(t, s, "async-dest")
		return strings.Contains(l, `"condition": "RetriesExhausted"`) && strings.Contains(l, `"approximateInvokeCount": 2`) && strings.Contains(l, "doomed")
	})
	// A succeeding one is reported to the success destination with the response.
	if _, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("async-go"), InvocationType: types.InvocationTypeEvent, Payload: []byte(`{"name":"lucky"}`)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the success record", func() bool {
		l := logsOf(t, s, "async-dest")
		return strings.Contains(l, `"condition": "Success"`) && strings.Contains(l, "hello, lucky")
	})

	if _, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("async-go"), InvocationType: types.InvocationTypeEvent, Payload: []byte(`{"x":"` + strings.Repeat("a", 1024*1024) + `"}`)}); errorCode(err) != "RequestTooLargeException" {
		t.Errorf("over 1 MB: %v", err)
	}
	if _, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("nope"), InvocationType: types.InvocationTypeEvent}); errorCode(err) != "ResourceNotFoundException" {
		t.Errorf("unknown function: %v", err)
	}
	if _, err := c.DeleteFunctionEventInvokeConfig(ctx, &lambda.DeleteFunctionEventInvokeConfigInput{FunctionName: aws.String("async-go")}); err != nil {
		t.Errorf("delete config: %v", err)
	}
}

const reporter = `
import json, time, urllib.request

def handler(event, context):
    time.sleep(0.1)
    urllib.request.urlopen(urllib.request.Request(event["url"], data=event["marker"].encode(), method="POST"), timeout=5)
    return {"ok": True}
`

// TestAsyncSurvivesKill9: events acknowledged with 202 run after the server
// is killed and restarted. The function reports each event to an HTTP
// server of the test, which outlives the Stratus server.
func TestAsyncSurvivesKill9(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sink := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen[string(b)]++
		mu.Unlock()
	})}
	go sink.Serve(ln)
	defer sink.Close()
	url := "http://" + ln.Addr().String() + "/"

	// The function reports to the test's loopback: the host's network.
	s := startServer(t, "", "--host-network", "durable-async")
	c := s.lambda()
	ctx := context.Background()
	createFunction(t, c, "durable-async", makeZip(t, map[string][]byte{"app.py": []byte(reporter)}), fnOpts{runtime: "python3.11", handler: "app.handler"})
	const n = 40
	for i := range n {
		if _, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("durable-async"), InvocationType: types.InvocationTypeEvent,
			Payload: []byte(fmt.Sprintf(`{"marker":"event-%03d","url":%q}`, i, url))}); err != nil {
			t.Fatal(err)
		}
	}
	s.kill()
	s.restart()
	waitFor(t, 90*time.Second, "every accepted event to run", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == n
	})
	mu.Lock()
	dups := 0
	for _, k := range seen {
		dups += k - 1
	}
	mu.Unlock()
	t.Logf("%d events, %d duplicate runs (at least once)", n, dups)
}
