package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	ltypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// jsonSink is an HTTP server of the test that functions report to; it
// outlives Stratus servers. It listens on the host's loopback, which an
// instance reaches only in the host's network: the servers of the tests
// that use it name their reporting functions with --host-network.
type jsonSink struct {
	URL  string
	mu   sync.Mutex
	msgs []map[string]any
}

func newJSONSink(t testing.TB) *jsonSink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &jsonSink{URL: "http://" + ln.Addr().String() + "/"}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		if json.Unmarshal(b, &m) == nil {
			s.mu.Lock()
			s.msgs = append(s.msgs, m)
			// How many reports so far share this one's "start": a
			// function learns whether it runs an event again.
			seen := 0
			for _, o := range s.msgs {
				if m["start"] != nil && o["start"] == m["start"] {
					seen++
				}
			}
			s.mu.Unlock()
			_ = json.NewEncoder(w).Encode(map[string]int{"seen": seen})
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return s
}

func (s *jsonSink) snapshot() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]any(nil), s.msgs...)
}

// bodies counts the records seen per body.
func (s *jsonSink) bodies() map[string]int {
	out := map[string]int{}
	for _, m := range s.snapshot() {
		if b, ok := m["body"].(string); ok {
			out[b]++
		}
	}
	return out
}

// sqsConsumer reports each batch and record; bodies starting with "fail"
// are reported back as partial batch failures.
const sqsConsumer = `
import json, os, urllib.request

def post(obj):
    urllib.request.urlopen(urllib.request.Request(os.environ["SINK"], data=json.dumps(obj).encode(), method="POST"), timeout=5)

def handler(event, context):
    recs = event["Records"]
    post({"batch": len(recs)})
    fails = []
    for r in recs:
        post({"body": r["body"], "rec": r})
        if r["body"].startswith("fail"):
            fails.append({"itemIdentifier": r["messageId"]})
    return {"batchItemFailures": fails}
`

// TestSQSTrigger maps a queue to a function: batches as Lambda shapes
// them, partial batch failures back to the queue and on to its
// dead-letter queue, disable and enable, batching windows, and the
// mapping API's errors.
func TestSQSTrigger(t *testing.T) {
	sink := newJSONSink(t)
	s := startServer(t, "", "--host-network", "consumer")
	c, lc := s.sqs(), s.lambda()
	ctx := context.Background()

	dlq := createQueue(t, c, "work-dlq", nil)
	dlqArn := queueAttrs(t, c, dlq)["QueueArn"]
	src := createQueue(t, c, "work", map[string]string{
		"VisibilityTimeout": "5",
		"RedrivePolicy":     `{"deadLetterTargetArn":"` + dlqArn + `","maxReceiveCount":2}`,
	})
	srcArn := queueAttrs(t, c, src)["QueueArn"]
	createFunction(t, lc, "consumer", makeZip(t, map[string][]byte{"app.py": []byte(sqsConsumer)}),
		fnOpts{runtime: "python3.11", handler: "app.handler", timeout: 5, env: map[string]string{"SINK": sink.URL}})

	// The mapping API's errors.
	_, err := lc.CreateEventSourceMapping(ctx, &lambda.CreateEventSourceMappingInput{FunctionName: aws.String("consumer"), EventSourceArn: &srcArn, BatchSize: aws.Int32(100)})
	if errorCode(err) != "InvalidParameterValueException" {
		t.Fatalf("batch over 10 without window: %v", err)
	}
	_, err = lc.CreateEventSourceMapping(ctx, &lambda.CreateEventSourceMappingInput{FunctionName: aws.String("nobody"), EventSourceArn: &srcArn})
	if errorCode(err) != "ResourceNotFoundException" {
		t.Fatalf("unknown function: %v", err)
	}
	_, err = lc.CreateEventSourceMapping(ctx, &lambda.CreateEventSourceMappingInput{FunctionName: aws.String("consumer"), EventSourceArn: aws.String("arn:aws:sqs:us-east-1:000000000000:nothere")})
	if errorCode(err) != "InvalidParameterValueException" {
		t.Fatalf("unknown queue: %v", err)
	}
	if _, err := lc.GetEventSourceMapping(ctx, &lambda.GetEventSourceMappingInput{UUID: aws.String("00000000-0000-0000-0000-000000000000")}); errorCode(err) != "ResourceNotFoundException" {
		t.Fatalf("unknown mapping: %v", err)
	}

	created, err := lc.CreateEventSourceMapping(ctx, &lambda.CreateEventSourceMappingInput{
		FunctionName: aws.String("consumer"), EventSourceArn: &srcArn, BatchSize: aws.Int32(10),
		FunctionResponseTypes: []ltypes.FunctionResponseType{ltypes.FunctionResponseTypeReportBatchItemFailures},
	})
	if err != nil {
		t.Fatal(err)
	}
	if *created.State != "Creating" || *created.EventSourceArn != srcArn || !strings.HasSuffix(*created.FunctionArn, ":function:consumer") || *created.BatchSize != 10 {
		t.Fatalf("created %+v", created)
	}
	id := created.UUID
	if _, err := lc.CreateEventSourceMapping(ctx, &lambda.CreateEventSourceMappingInput{FunctionName: aws.String("consumer"), EventSourceArn: &srcArn}); errorCode(err) != "ResourceConflictException" {
		t.Fatalf("duplicate mapping: %v", err)
	}
	got, err := lc.GetEventSourceMapping(ctx, &lambda.GetEventSourceMappingInput{UUID: id})
	if err != nil || *got.State != "Enabled" || len(got.FunctionResponseTypes) != 1 {
		t.Fatalf("get: %v %+v", err, got)
	}

	const n = 30
	var entries []types.SendMessageBatchRequestEntry
	for i := range n {
		entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), MessageBody: aws.String(fmt.Sprintf("ok-%02d", i)),
			MessageAttributes: map[string]types.MessageAttributeValue{"n": {DataType: aws.String("Number"), StringValue: aws.String(fmt.Sprint(i))}}})
		if len(entries) == 10 {
			if _, err := c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &src, Entries: entries}); err != nil {
				t.Fatal(err)
			}
			entries = nil
		}
	}
	for _, b := range []string{"fail-a", "fail-b"} {
		if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &src, MessageBody: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 90*time.Second, "every message processed and the failures retried", func() bool {
		b := sink.bodies()
		for i := range n {
			if b[fmt.Sprintf("ok-%02d", i)] == 0 {
				return false
			}
		}
		return b["fail-a"] >= 2 && b["fail-b"] >= 2
	})
	// The failures end in the dead-letter queue after two receives.
	var dead []string
	waitFor(t, 30*time.Second, "failed messages in the dead-letter queue", func() bool {
		for _, m := range receive(t, c, dlq, 10, 1) {
			dead = append(dead, *m.Body)
		}
		return len(dead) >= 2
	})
	if strings.Join(dead, ",") != "fail-a,fail-b" && strings.Join(dead, ",") != "fail-b,fail-a" {
		t.Fatalf("dead letters %v", dead)
	}
	// At least once: a batch that outlives its visibility timeout on a
	// loaded machine runs again, so duplicates are counted, not refused.
	b := sink.bodies()
	dups := 0
	for i := range n {
		dups += b[fmt.Sprintf("ok-%02d", i)] - 1
	}
	if dups > 0 {
		t.Logf("%d duplicate deliveries of %d messages", dups, n)
	}
	if b["fail-a"] != 2 || b["fail-b"] != 2 {
		t.Errorf("failed messages processed %d and %d times, want 2 (maxReceiveCount)", b["fail-a"], b["fail-b"])
	}
	// The event as Lambda shapes it.
	for _, m := range sink.snapshot() {
		if m["body"] != "ok-07" {
			continue
		}
		rec := m["rec"].(map[string]any)
		attrs := rec["attributes"].(map[string]any)
		mattrs := rec["messageAttributes"].(map[string]any)["n"].(map[string]any)
		if rec["eventSource"] != "aws:sqs" || rec["eventSourceARN"] != srcArn || rec["awsRegion"] != "us-east-1" ||
			attrs["ApproximateReceiveCount"] != "1" || attrs["SentTimestamp"] == nil || rec["receiptHandle"] == "" ||
			rec["md5OfBody"] == nil || rec["messageId"] == "" || mattrs["stringValue"] != "7" || mattrs["dataType"] != "Number" {
			t.Errorf("record %v", rec)
		}
	}
	a := queueAttrs(t, c, src)
	if a["ApproximateNumberOfMessages"] != "0" || a["ApproximateNumberOfMessagesNotVisible"] != "0" {
		t.Errorf("source queue not empty: %v", a)
	}

	// Disabled: messages wait. Enabled again: they run.
	if _, err := lc.UpdateEventSourceMapping(ctx, &lambda.UpdateEventSourceMappingInput{UUID: id, Enabled: aws.Bool(false)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &src, MessageBody: aws.String("while-off")}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if sink.bodies()["while-off"] != 0 {
		t.Fatal("a disabled mapping processed a message")
	}
	// Batching window: up to 50 messages gathered for two seconds.
	up, err := lc.UpdateEventSourceMapping(ctx, &lambda.UpdateEventSourceMappingInput{UUID: id, Enabled: aws.Bool(true),
		BatchSize: aws.Int32(50), MaximumBatchingWindowInSeconds: aws.Int32(2)})
	if err != nil || *up.BatchSize != 50 || *up.MaximumBatchingWindowInSeconds != 2 {
		t.Fatalf("update: %v %+v", err, up)
	}
	for i := range 30 {
		entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), MessageBody: aws.String(fmt.Sprintf("win-%02d", i))})
		if len(entries) == 10 {
			if _, err := c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &src, Entries: entries}); err != nil {
				t.Fatal(err)
			}
			entries = nil
		}
	}
	waitFor(t, 30*time.Second, "windowed messages processed", func() bool {
		b := sink.bodies()
		for i := range 30 {
			if b[fmt.Sprintf("win-%02d", i)] == 0 {
				return false
			}
		}
		return b["while-off"] == 1
	})
	biggest := 0.0
	for _, m := range sink.snapshot() {
		if n, ok := m["batch"].(float64); ok && n > biggest {
			biggest = n
		}
	}
	if biggest <= 10 {
		t.Errorf("largest batch %v: the batching window gathered nothing beyond 10", biggest)
	}

	list, err := lc.ListEventSourceMappings(ctx, &lambda.ListEventSourceMappingsInput{FunctionName: aws.String("consumer")})
	if err != nil || len(list.EventSourceMappings) != 1 || *list.EventSourceMappings[0].UUID != *id {
		t.Fatalf("list: %v %+v", err, list)
	}
	del, err := lc.DeleteEventSourceMapping(ctx, &lambda.DeleteEventSourceMappingInput{UUID: id})
	if err != nil || *del.State != "Deleting" {
		t.Fatalf("delete: %v %+v", err, del)
	}
	if _, err := lc.GetEventSourceMapping(ctx, &lambda.GetEventSourceMappingInput{UUID: id}); errorCode(err) != "ResourceNotFoundException" {
		t.Fatalf("deleted mapping: %v", err)
	}
}

// TestAsyncQueueDestinations: asynchronous outcomes go to SQS queues, as
// destination records and as dead letters of the function's
// DeadLetterConfig.
func TestAsyncQueueDestinations(t *testing.T) {
	s := startServer(t, "", "--async-retry-delay", "200ms")
	c, lc := s.sqs(), s.lambda()
	ctx := context.Background()
	okQ := createQueue(t, c, "on-success", nil)
	failQ := createQueue(t, c, "on-failure", nil)
	dlq := createQueue(t, c, "fn-dlq", nil)
	arn := func(u string) *string { return aws.String(queueAttrs(t, c, u)["QueueArn"]) }
	createFunction(t, lc, "async-q", goZip(t), fnOpts{})
	if _, err := lc.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("async-q"),
		DeadLetterConfig: &ltypes.DeadLetterConfig{TargetArn: arn(dlq)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := lc.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("async-q"),
		DeadLetterConfig: &ltypes.DeadLetterConfig{TargetArn: aws.String("arn:aws:sns:us-east-1:000000000000:t")}}); errorCode(err) != "InvalidParameterValueException" {
		t.Fatalf("topic as dead-letter target: %v", err)
	}
	cfg, err := lc.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("async-q")})
	if err != nil || cfg.DeadLetterConfig == nil || *cfg.DeadLetterConfig.TargetArn != *arn(dlq) {
		t.Fatalf("dead-letter config: %v %+v", err, cfg.DeadLetterConfig)
	}
	if _, err := lc.PutFunctionEventInvokeConfig(ctx, &lambda.PutFunctionEventInvokeConfigInput{FunctionName: aws.String("async-q"), MaximumRetryAttempts: aws.Int32(1),
		DestinationConfig: &ltypes.DestinationConfig{OnSuccess: &ltypes.OnSuccess{Destination: arn(okQ)}, OnFailure: &ltypes.OnFailure{Destination: arn(failQ)}}}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{`{"name":"good"}`, `{"fail":"error","name":"bad"}`} {
		if _, err := lc.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("async-q"), InvocationType: ltypes.InvocationTypeEvent, Payload: []byte(p)}); err != nil {
			t.Fatal(err)
		}
	}
	one := func(u string) types.Message {
		t.Helper()
		var got []types.Message
		waitFor(t, 20*time.Second, "a message in "+u, func() bool {
			got = receive(t, c, u, 1, 1)
			return len(got) == 1
		})
		return got[0]
	}
	var rec struct {
		Version        string          `json:"version"`
		RequestContext map[string]any  `json:"requestContext"`
		RequestPayload json.RawMessage `json:"requestPayload"`
		Response       map[string]any  `json:"responseContext"`
		Payload        json.RawMessage `json:"responsePayload"`
	}
	m := one(okQ)
	if err := json.Unmarshal([]byte(*m.Body), &rec); err != nil || rec.RequestContext["condition"] != "Success" || !strings.Contains(string(rec.Payload), "hello, good") || rec.Version != "1.0" {
		t.Fatalf("success record: %v %s", err, *m.Body)
	}
	m = one(failQ)
	if err := json.Unmarshal([]byte(*m.Body), &rec); err != nil || rec.RequestContext["condition"] != "RetriesExhausted" ||
		rec.RequestContext["approximateInvokeCount"] != 2.0 || rec.Response["functionError"] != "Unhandled" || !strings.Contains(string(rec.RequestPayload), "bad") {
		t.Fatalf("failure record: %v %s", err, *m.Body)
	}
	m = one(dlq)
	if !strings.Contains(*m.Body, `"name":"bad"`) || *m.MessageAttributes["ErrorCode"].StringValue != "200" ||
		m.MessageAttributes["RequestID"].StringValue == nil || m.MessageAttributes["ErrorMessage"].StringValue == nil {
		t.Fatalf("dead letter: %s %+v", *m.Body, m.MessageAttributes)
	}
	// What happened is visible with the CLI.
	// The CLI signs with a profile named in the environment, as the AWS CLI would.
	env := append(os.Environ(), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(s.dataDir, "credentials"), "AWS_PROFILE=stratus")
	out, err := runCmd(t, env, stratusBin, "queues", "--endpoint", s.Endpoint)
	if err != nil || !strings.Contains(out, "fn-dlq") || !strings.Contains(out, "retries exhausted 1") || !strings.Contains(out, "dead-lettered 1") || !strings.Contains(out, "retried 1") {
		t.Fatalf("stratus queues: %v\n%s", err, out)
	}
	t.Logf("stratus queues:\n%s", out)
}

// sqsSender uses boto3 inside the function with no endpoint or
// credentials configured: Stratus gives the instance both.
const sqsSender = `
import boto3

def handler(event, context):
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=event["queue"])["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody=event["body"])
    return {"sent": True}
`

// TestFunctionFeedsQueue: a function sends to a Stratus queue with an
// unchanged AWS SDK, and a mapping hands the message to another function.
func TestFunctionFeedsQueue(t *testing.T) {
	sink := newJSONSink(t)
	s := startServer(t, "", "--host-network", "consumer2")
	c, lc := s.sqs(), s.lambda()
	ctx := context.Background()
	u := createQueue(t, c, "handoff", nil)
	createFunction(t, lc, "producer", makeZip(t, map[string][]byte{"app.py": []byte(sqsSender)}), fnOpts{runtime: "python3.11", handler: "app.handler", timeout: 10})
	createFunction(t, lc, "consumer2", makeZip(t, map[string][]byte{"app.py": []byte(sqsConsumer)}),
		fnOpts{runtime: "python3.11", handler: "app.handler", env: map[string]string{"SINK": sink.URL}})
	if _, err := lc.CreateEventSourceMapping(ctx, &lambda.CreateEventSourceMappingInput{FunctionName: aws.String("consumer2"), EventSourceArn: aws.String(queueAttrs(t, c, u)["QueueArn"])}); err != nil {
		t.Fatal(err)
	}
	out := invoke(t, lc, "producer", `{"queue":"handoff","body":"from-producer"}`)
	if out.FunctionError != nil {
		t.Fatalf("producer failed: %s", out.Payload)
	}
	waitFor(t, 30*time.Second, "the consumer to get the producer's message", func() bool { return sink.bodies()["from-producer"] == 1 })
}

// slowConsumer takes half a second per batch and reports which instance
// ran it.
const slowConsumer = `
import json, os, time, urllib.request, uuid
INSTANCE = uuid.uuid4().hex

def handler(event, context):
    time.sleep(0.5)
    data = json.dumps({"instance": INSTANCE, "n": len(event["Records"])}).encode()
    urllib.request.urlopen(urllib.request.Request(os.environ["SINK"], data=data, method="POST"), timeout=5)
    return {}
`

// TestSQSTriggerScales: a backlog brings more pollers, hence concurrent
// batches on several instances; once the queue is empty, the pollers
// drop back to one.
func TestSQSTriggerScales(t *testing.T) {
	sink := newJSONSink(t)
	s := startServer(t, "", "--host-network", "slow")
	c, lc := s.sqs(), s.lambda()
	ctx := context.Background()
	u := createQueue(t, c, "backlog", nil)
	createFunction(t, lc, "slow", makeZip(t, map[string][]byte{"app.py": []byte(slowConsumer)}),
		fnOpts{runtime: "python3.11", handler: "app.handler", env: map[string]string{"SINK": sink.URL}})
	const n = 300
	for b := range n / 10 {
		var entries []types.SendMessageBatchRequestEntry
		for i := range 10 {
			entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), MessageBody: aws.String(fmt.Sprintf("%d-%d", b, i))})
		}
		if _, err := c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &u, Entries: entries}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := lc.CreateEventSourceMapping(ctx, &lambda.CreateEventSourceMappingInput{FunctionName: aws.String("slow"),
		EventSourceArn: aws.String(queueAttrs(t, c, u)["QueueArn"]), ScalingConfig: &ltypes.ScalingConfig{MaximumConcurrency: aws.Int32(8)}}); err != nil {
		t.Fatal(err)
	}
	pollers := func() int {
		for _, line := range strings.Split(metricsText(t, s), "\n") {
			if strings.HasPrefix(line, "stratus_event_source_pollers{") {
				var v int
				fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
				return v
			}
		}
		return -1
	}
	peak := 0
	waitFor(t, 60*time.Second, "the backlog to be processed", func() bool {
		peak = max(peak, pollers())
		done := 0
		for _, m := range sink.snapshot() {
			done += int(m["n"].(float64))
		}
		return done >= n
	})
	instances := map[string]bool{}
	for _, m := range sink.snapshot() {
		instances[m["instance"].(string)] = true
	}
	if peak < 2 || peak > 8 || len(instances) < 2 || len(instances) > 8 {
		t.Fatalf("peak pollers %d, instances %d: want 2 to 8 (MaximumConcurrency)", peak, len(instances))
	}
	// Idle: every extra poller retires after an empty 20 s long poll.
	waitFor(t, 45*time.Second, "pollers back to one", func() bool { return pollers() == 1 })
	t.Logf("backlog of %d: peak %d pollers, %d instances", n, peak, len(instances))
}

// TestSQSTriggerBatchSizes: every batch size Lambda allows delivers each
// message exactly once, at its edges too (a long poll that fills a batch
// of one used to ask the store for zero more, and lost the message).
func TestSQSTriggerBatchSizes(t *testing.T) {
	sink := newJSONSink(t)
	s := startServer(t, "", "--host-network", "sizes")
	c, lc := s.sqs(), s.lambda()
	ctx := context.Background()
	createFunction(t, lc, "sizes", makeZip(t, map[string][]byte{"app.py": []byte(sqsConsumer)}),
		fnOpts{runtime: "python3.11", handler: "app.handler", timeout: 5, env: map[string]string{"SINK": sink.URL}})

	// A plain long poll for one message that arrives during the wait: a
	// delayed message becomes visible a second into the poll.
	plain := createQueue(t, c, "plain-one", nil)
	if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &plain, MessageBody: aws.String("late"), DelaySeconds: 1}); err != nil {
		t.Fatal(err)
	}
	out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &plain, MaxNumberOfMessages: 1, WaitTimeSeconds: 10})
	if err != nil || len(out.Messages) != 1 || *out.Messages[0].Body != "late" {
		t.Fatalf("long poll of one: %v %+v", err, out)
	}

	cases := []struct {
		name   string
		batch  int32
		window int32
	}{
		{"b1", 1, 0},
		{"b2", 2, 0},
		{"b10", 10, 0},
		{"b11", 11, 1},
		{"b10000", 10000, 1},
	}
	const n = 30
	urls := map[string]string{}
	for _, tc := range cases {
		u := createQueue(t, c, "size-"+tc.name, map[string]string{"VisibilityTimeout": "10"})
		urls[tc.name] = u
		in := &lambda.CreateEventSourceMappingInput{FunctionName: aws.String("sizes"), EventSourceArn: aws.String(queueAttrs(t, c, u)["QueueArn"]), BatchSize: aws.Int32(tc.batch)}
		if tc.window > 0 {
			in.MaximumBatchingWindowInSeconds = aws.Int32(tc.window)
		}
		if _, err := lc.CreateEventSourceMapping(ctx, in); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		// A lone message first, arriving while the poller waits in a long poll.
		if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &u, MessageBody: aws.String(tc.name + "-lone"), DelaySeconds: 1}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Second, "every lone message delivered", func() bool {
		b := sink.bodies()
		for _, tc := range cases {
			if b[tc.name+"-lone"] == 0 {
				return false
			}
		}
		return true
	})
	for _, tc := range cases {
		for k := range n / 10 {
			var entries []types.SendMessageBatchRequestEntry
			for i := range 10 {
				entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), MessageBody: aws.String(fmt.Sprintf("%s-%d", tc.name, k*10+i))})
			}
			if _, err := c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(urls[tc.name]), Entries: entries}); err != nil {
				t.Fatal(err)
			}
		}
	}
	drained := func(u string) bool {
		a := queueAttrs(t, c, u)
		return a["ApproximateNumberOfMessages"] == "0" && a["ApproximateNumberOfMessagesNotVisible"] == "0"
	}
	waitFor(t, 60*time.Second, "every message delivered and deleted", func() bool {
		b := sink.bodies()
		for _, tc := range cases {
			for i := range n {
				if b[fmt.Sprintf("%s-%d", tc.name, i)] == 0 {
					return false
				}
			}
			if !drained(urls[tc.name]) {
				return false
			}
		}
		return true
	})
	b := sink.bodies()
	for body, k := range b {
		if k != 1 {
			t.Errorf("%s delivered %d times", body, k)
		}
	}
	if len(b) != len(cases)*(n+1) {
		t.Errorf("%d distinct bodies, want %d", len(b), len(cases)*(n+1))
	}
	list, err := lc.ListEventSourceMappings(ctx, &lambda.ListEventSourceMappingsInput{FunctionName: aws.String("sizes")})
	if err != nil {
		t.Fatal(err)
	}
	for _, mp := range list.EventSourceMappings {
		if *mp.State != "Enabled" || *mp.StateTransitionReason != "USER_INITIATED" || *mp.LastProcessingResult != "OK" {
			t.Errorf("mapping of batch %d: state %s (%s), last result %s", *mp.BatchSize, *mp.State, *mp.StateTransitionReason, *mp.LastProcessingResult)
		}
	}

	// A mapping whose queue is gone cannot poll, and says so.
	if _, err := c.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(urls["b2"])}); err != nil {
		t.Fatal(err)
	}
	var reason string
	waitFor(t, 30*time.Second, "the mapping to report its problem", func() bool {
		for _, mp := range list.EventSourceMappings {
			if *mp.BatchSize != 2 {
				continue
			}
			got, err := lc.GetEventSourceMapping(ctx, &lambda.GetEventSourceMappingInput{UUID: mp.UUID})
			if err != nil {
				t.Fatal(err)
			}
			reason = *got.StateTransitionReason
			return *got.State == "Enabled" && strings.HasPrefix(reason, "PROBLEM: ") && strings.HasPrefix(*got.LastProcessingResult, "PROBLEM: ")
		}
		return false
	})
	t.Logf("mapping of a deleted queue: %s", reason)
}
