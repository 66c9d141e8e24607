package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// looper passes its event on, one hop further, through the service that
// brought it: a queue message to the same queue, an asynchronous event to
// itself. boto3 carries the trace header, as on Lambda; nothing in the
// code knows about loops.
const looper = `import boto3, json, os
sqs = boto3.client("sqs")
lam = boto3.client("lambda")
def handler(event, context):
    if "Records" in event:
        hop = int(event["Records"][0]["body"])
        if hop < 30:
            sqs.send_message(QueueUrl=os.environ["QUEUE"], MessageBody=str(hop + 1))
    else:
        hop = event["hop"]
        if hop < 30:
            lam.invoke(FunctionName=context.function_name, InvocationType="Event", Payload=json.dumps({"hop": hop + 1}))
    return hop
`

// TestRecursiveLoops: a function feeding the queue that triggers it, and
// one invoking itself asynchronously, are stopped after 16 runs of the
// same event (the 17th goes to the dead-letter queue, the failure
// destination); with RecursiveLoop Allow the loop runs to its end.
func TestRecursiveLoops(t *testing.T) {
	s := startServer(t, "")
	ctx := context.Background()
	c, q := s.lambda(), s.sqs()
	dlq := createQueue(t, q, "loop-dlq", nil)
	url := createQueue(t, q, "loop", map[string]string{"RedrivePolicy": `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:loop-dlq","maxReceiveCount":"5"}`})
	failures := createQueue(t, q, "loop-failures", nil)
	fn := createFunction(t, c, "looper", makeZip(t, map[string][]byte{"app.py": []byte(looper)}),
		fnOpts{runtime: "python3.11", handler: "app.handler", timeout: 30, env: map[string]string{"QUEUE": url}})

	cfg, err := c.GetFunctionRecursionConfig(ctx, &lambda.GetFunctionRecursionConfigInput{FunctionName: aws.String("looper")})
	if err != nil || cfg.RecursiveLoop != types.RecursiveLoopTerminate {
		t.Fatalf("default recursion config: %v %+v", err, cfg)
	}
	if _, err := c.PutFunctionRecursionConfig(ctx, &lambda.PutFunctionRecursionConfigInput{FunctionName: aws.String("looper"), RecursiveLoop: "Sometimes"}); errorCode(err) != "InvalidParameterValueException" {
		t.Errorf("RecursiveLoop Sometimes: %v", err)
	}
	if _, err := c.GetFunctionRecursionConfig(ctx, &lambda.GetFunctionRecursionConfigInput{FunctionName: aws.String("nope")}); errorCode(err) != "ResourceNotFoundException" {
		t.Errorf("recursion config of no function: %v", err)
	}

	// Through SQS.
	if _, err := c.CreateEventSourceMapping(ctx, &lambda.CreateEventSourceMappingInput{FunctionName: aws.String("looper"),
		EventSourceArn: aws.String("arn:aws:sqs:us-east-1:000000000000:loop"), BatchSize: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	if _, err := q.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("1")}); err != nil {
		t.Fatal(err)
	}
	var stopped []string
	waitFor(t, 60*time.Second, "the looping message in the dead-letter queue", func() bool {
		for _, m := range receive(t, q, dlq, 10, 1) {
			stopped = append(stopped, aws.ToString(m.Body))
		}
		return len(stopped) > 0
	})
	if strings.Join(stopped, ",") != "17" {
		t.Errorf("dead letters %v, want the 17th hop's message", stopped)
	}
	// Usage is written in batches: it catches up with the runs.
	waitFor(t, 10*time.Second, "16 runs metered", func() bool { return s.usage(t, "looper").Requests >= 16 })
	if n := s.usage(t, "looper").Requests; n != 16 {
		t.Errorf("the loop ran %d times, want 16", n)
	}
	if m := metricValue(t, s, `stratus_recursive_invocations_dropped_total{function="looper"}`); m != 1 {
		t.Errorf("dropped invocations metric %v", m)
	}

	// Through asynchronous invokes, with a failure destination.
	if _, err := c.PutFunctionEventInvokeConfig(ctx, &lambda.PutFunctionEventInvokeConfigInput{FunctionName: aws.String("looper"),
		DestinationConfig: &types.DestinationConfig{OnFailure: &types.OnFailure{Destination: aws.String("arn:aws:sqs:us-east-1:000000000000:loop-failures")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("looper"), InvocationType: types.InvocationTypeEvent, Payload: []byte(`{"hop":1}`)}); err != nil {
		t.Fatal(err)
	}
	var rec struct {
		RequestContext struct {
			Condition string `json:"condition"`
		} `json:"requestContext"`
		RequestPayload struct {
			Hop int `json:"hop"`
		} `json:"requestPayload"`
	}
	waitFor(t, 60*time.Second, "the failure record of the stopped event", func() bool {
		msgs := receive(t, q, failures, 1, 1)
		return len(msgs) == 1 && json.Unmarshal([]byte(aws.ToString(msgs[0].Body)), &rec) == nil
	})
	if rec.RequestContext.Condition != "RecursiveInvocationDetected" || rec.RequestPayload.Hop != 17 {
		t.Errorf("failure record %+v", rec)
	}
	waitFor(t, 10*time.Second, "32 runs metered", func() bool { return s.usage(t, "looper").Requests >= 32 })
	if n := s.usage(t, "looper").Requests; n != 32 {
		t.Errorf("after the async loop %d runs, want 32", n)
	}

	// Allowed, the queue loop runs to hop 30.
	if out, err := c.PutFunctionRecursionConfig(ctx, &lambda.PutFunctionRecursionConfigInput{FunctionName: fn.FunctionArn, RecursiveLoop: types.RecursiveLoopAllow}); err != nil || out.RecursiveLoop != types.RecursiveLoopAllow {
		t.Fatalf("PutFunctionRecursionConfig Allow: %v %+v", err, out)
	}
	if cfg, err := c.GetFunctionRecursionConfig(ctx, &lambda.GetFunctionRecursionConfigInput{FunctionName: aws.String("looper")}); err != nil || cfg.RecursiveLoop != types.RecursiveLoopAllow {
		t.Fatalf("GetFunctionRecursionConfig after Allow: %v %+v", err, cfg)
	}
	if _, err := q.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("1")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "30 more runs", func() bool { return s.usage(t, "looper").Requests >= 62 })
	if n := len(receive(t, q, dlq, 10, 0)); n != 0 {
		t.Errorf("%d dead letters with Allow", n)
	}
}
