package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

func (s *server) sqs() *sqs.Client {
	return sqs.New(sqs.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(s.Endpoint),
		Credentials:  s.creds(),
		HTTPClient:   &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}},
	})
}

func createQueue(t testing.TB, c *sqs.Client, name string, attrs map[string]string) string {
	t.Helper()
	out, err := c.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	if err != nil {
		t.Fatalf("create queue %s: %v", name, err)
	}
	return *out.QueueUrl
}

func queueAttrs(t testing.TB, c *sqs.Client, url string) map[string]string {
	t.Helper()
	out, err := c.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: []types.QueueAttributeName{"All"}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Attributes
}

func receive(t testing.TB, c *sqs.Client, url string, max int32, wait int32) []types.Message {
	t.Helper()
	out, err := c.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{
		QueueUrl: &url, MaxNumberOfMessages: max, WaitTimeSeconds: wait,
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{"All"},
		MessageAttributeNames:       []string{"All"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Messages
}

// TestSQSQueues drives the queue API with aws-sdk-go-v2 (JSON protocol).
func TestSQSQueues(t *testing.T) {
	s := startServer(t, "")
	c := s.sqs()
	ctx := context.Background()

	u := createQueue(t, c, "orders", map[string]string{"VisibilityTimeout": "20", "DelaySeconds": "0"})
	if u != s.Endpoint+"/000000000000/orders" {
		t.Fatalf("queue url %s", u)
	}
	// Same name, same attributes: the same queue. Different: an error.
	if again := createQueue(t, c, "orders", map[string]string{"VisibilityTimeout": "20", "DelaySeconds": "0"}); again != u {
		t.Fatalf("repeated create gave %s", again)
	}
	_, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("orders"), Attributes: map[string]string{"VisibilityTimeout": "40"}})
	var exists *types.QueueNameExists
	if !errors.As(err, &exists) {
		t.Fatalf("conflicting create: %v", err)
	}
	for _, bad := range []struct {
		name  string
		attrs map[string]string
		code  string
	}{
		{"bad name!", nil, "InvalidParameterValue"},
		{strings.Repeat("x", 81), nil, "InvalidParameterValue"},
		{"ok", map[string]string{"VisibilityTimeout": "43201"}, "InvalidAttributeValue"},
		{"ok", map[string]string{"MessageRetentionPeriod": "59"}, "InvalidAttributeValue"},
		{"ok", map[string]string{"Bogus": "1"}, "InvalidAttributeName"},
		{"ok", map[string]string{"RedrivePolicy": `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:none","maxReceiveCount":3}`}, "InvalidParameterValue"},
	} {
		_, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(bad.name), Attributes: bad.attrs})
		if errorCode(err) != bad.code {
			t.Errorf("create %q %v: got %v, want %s", bad.name, bad.attrs, err, bad.code)
		}
	}
	_, err = c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("missing")})
	var missing *types.QueueDoesNotExist
	if !errors.As(err, &missing) {
		t.Fatalf("unknown queue: %v", err)
	}
	got, err := c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("orders")})
	if err != nil || *got.QueueUrl != u {
		t.Fatalf("get url: %v", err)
	}

	// Listing with a prefix and pages.
	for i := range 5 {
		createQueue(t, c, fmt.Sprintf("page-%d", i), nil)
	}
	var listed []string
	p := sqs.NewListQueuesPaginator(c, &sqs.ListQueuesInput{QueueNamePrefix: aws.String("page-"), MaxResults: aws.Int32(2)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		listed = append(listed, page.QueueUrls...)
	}
	if len(listed) != 5 || !strings.HasSuffix(listed[0], "/page-0") {
		t.Fatalf("listed %v", listed)
	}

	attrs := queueAttrs(t, c, u)
	if attrs["QueueArn"] != "arn:aws:sqs:us-east-1:000000000000:orders" || attrs["VisibilityTimeout"] != "20" || attrs["MaximumMessageSize"] != "262144" {
		t.Fatalf("attributes %v", attrs)
	}
	if _, err := c.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: &u, Attributes: map[string]string{"VisibilityTimeout": "2"}}); err != nil {
		t.Fatal(err)
	}
	if v := queueAttrs(t, c, u)["VisibilityTimeout"]; v != "2" {
		t.Fatalf("visibility after set: %s", v)
	}

	// Send with attributes (the SDK checks the MD5 digests we answer).
	sent, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &u, MessageBody: aws.String(`{"order":1}`),
		MessageAttributes: map[string]types.MessageAttributeValue{
			"kind":  {DataType: aws.String("String"), StringValue: aws.String("new")},
			"count": {DataType: aws.String("Number"), StringValue: aws.String("3")},
			"blob":  {DataType: aws.String("Binary"), BinaryValue: []byte{0, 1, 2, 255}},
		}})
	if err != nil {
		t.Fatal(err)
	}
	if sent.MD5OfMessageAttributes == nil || *sent.MD5OfMessageAttributes == "" {
		t.Fatal("no attributes digest")
	}
	msgs := receive(t, c, u, 10, 0)
	if len(msgs) != 1 || *msgs[0].MessageId != *sent.MessageId || *msgs[0].Body != `{"order":1}` {
		t.Fatalf("received %+v", msgs)
	}
	m := msgs[0]
	if m.Attributes["ApproximateReceiveCount"] != "1" || m.Attributes["SentTimestamp"] == "" ||
		*m.MessageAttributes["kind"].StringValue != "new" || string(m.MessageAttributes["blob"].BinaryValue) != "\x00\x01\x02\xff" ||
		*m.MD5OfMessageAttributes != *sent.MD5OfMessageAttributes {
		t.Fatalf("message %+v", m)
	}
	// In flight: invisible; after the 2 s visibility timeout, back with count 2.
	if again := receive(t, c, u, 10, 0); len(again) != 0 {
		t.Fatalf("in-flight message received again: %+v", again)
	}
	if a := queueAttrs(t, c, u); a["ApproximateNumberOfMessagesNotVisible"] != "1" {
		t.Fatalf("counts while in flight: %v", a)
	}
	back := receive(t, c, u, 1, 5)
	if len(back) != 1 || back[0].Attributes["ApproximateReceiveCount"] != "2" {
		t.Fatalf("after visibility timeout: %+v", back)
	}
	// Visibility 0 returns it at once; delete removes it.
	if _, err := c.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: &u, ReceiptHandle: back[0].ReceiptHandle, VisibilityTimeout: 0}); err != nil {
		t.Fatal(err)
	}
	back = receive(t, c, u, 1, 2)
	if len(back) != 1 {
		t.Fatal("message not visible after visibility 0")
	}
	if _, err := c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &u, ReceiptHandle: back[0].ReceiptHandle}); err != nil {
		t.Fatal(err)
	}
	if a := queueAttrs(t, c, u); a["ApproximateNumberOfMessages"] != "0" || a["ApproximateNumberOfMessagesNotVisible"] != "0" {
		t.Fatalf("counts after delete: %v", a)
	}
	_, err = c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &u, ReceiptHandle: aws.String("not-a-handle")})
	var badHandle *types.ReceiptHandleIsInvalid
	if !errors.As(err, &badHandle) {
		t.Fatalf("bad handle: %v", err)
	}

	// Bad messages.
	_, err = c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &u, MessageBody: aws.String(strings.Repeat("x", 262145))})
	if errorCode(err) != "InvalidParameterValue" || !strings.Contains(err.Error(), "shorter than 262144") {
		t.Fatalf("oversize message: %v", err)
	}
	_, err = c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &u, MessageBody: aws.String("bad \x01 char")})
	var contents *types.InvalidMessageContents
	if !errors.As(err, &contents) {
		t.Fatalf("invalid characters: %v", err)
	}

	// A batch: one bad entry fails alone; a delayed entry waits.
	batch, err := c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &u, Entries: []types.SendMessageBatchRequestEntry{
		{Id: aws.String("a"), MessageBody: aws.String("one")},
		{Id: aws.String("b"), MessageBody: aws.String("two"), DelaySeconds: 2},
		{Id: aws.String("c"), MessageBody: aws.String("bad \x02")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(batch.Successful) != 2 || len(batch.Failed) != 1 || *batch.Failed[0].Id != "c" || !batch.Failed[0].SenderFault {
		t.Fatalf("batch %+v", batch)
	}
	_, err = c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &u, Entries: []types.SendMessageBatchRequestEntry{
		{Id: aws.String("x"), MessageBody: aws.String("1")}, {Id: aws.String("x"), MessageBody: aws.String("2")},
	}})
	var distinct *types.BatchEntryIdsNotDistinct
	if !errors.As(err, &distinct) {
		t.Fatalf("duplicate ids: %v", err)
	}
	if a := queueAttrs(t, c, u); a["ApproximateNumberOfMessagesDelayed"] != "1" {
		t.Fatalf("delayed count: %v", a)
	}
	// Held longer than the delay, so only the delayed message comes next.
	held, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &u, MaxNumberOfMessages: 10, VisibilityTimeout: 30})
	if err != nil {
		t.Fatal(err)
	}
	first := held.Messages
	if len(first) != 1 || *first[0].Body != "one" {
		t.Fatalf("before the delay: %+v", first)
	}
	start := time.Now()
	later := receive(t, c, u, 10, 10)
	if len(later) != 1 || *later[0].Body != "two" || time.Since(start) > 8*time.Second {
		t.Fatalf("delayed message: %+v after %v", later, time.Since(start))
	}
	// Received at the end of the wait, not at its start.
	if fr, _ := strconv.ParseInt(later[0].Attributes["ApproximateFirstReceiveTimestamp"], 10, 64); fr < start.Add(time.Second).UnixMilli() {
		t.Fatalf("first receive %d, wait began %d", fr, start.UnixMilli())
	}
	var entries []types.DeleteMessageBatchRequestEntry
	for i, m := range append(first, later...) {
		entries = append(entries, types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle})
	}
	del, err := c.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &u, Entries: entries})
	if err != nil || len(del.Successful) != 2 {
		t.Fatalf("delete batch: %v %+v", err, del)
	}

	// Long poll: a receive waiting when a message arrives returns with it.
	go func() {
		time.Sleep(500 * time.Millisecond)
		_, _ = c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &u, MessageBody: aws.String("wake")})
	}()
	start = time.Now()
	woke := receive(t, c, u, 10, 10)
	if len(woke) != 1 || *woke[0].Body != "wake" || time.Since(start) > 5*time.Second {
		t.Fatalf("long poll: %+v after %v", woke, time.Since(start))
	}
	// An empty long poll waits its time.
	start = time.Now()
	if none := receive(t, c, u, 1, 1); len(none) != 0 || time.Since(start) < 900*time.Millisecond {
		t.Fatalf("empty long poll: %v after %v", none, time.Since(start))
	}

	// Purge and delete.
	for range 3 {
		_, _ = c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &u, MessageBody: aws.String("p")})
	}
	if _, err := c.PurgeQueue(ctx, &sqs.PurgeQueueInput{QueueUrl: &u}); err != nil {
		t.Fatal(err)
	}
	if left := receive(t, c, u, 10, 0); len(left) != 0 {
		t.Fatalf("after purge: %d messages", len(left))
	}
	if _, err := c.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: &u}); err != nil {
		t.Fatal(err)
	}
	_, err = c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &u, MessageBody: aws.String("x")})
	if !errors.As(err, &missing) {
		t.Fatalf("send to deleted queue: %v", err)
	}
}

// TestSQSStaleReceiptHandle: a handle from an earlier delivery neither
// deletes nor hides the message once it was received again.
func TestSQSStaleReceiptHandle(t *testing.T) {
	s := startServer(t, "")
	c := s.sqs()
	ctx := context.Background()
	u := createQueue(t, c, "fenced", map[string]string{"VisibilityTimeout": "1"})
	if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &u, MessageBody: aws.String("once")}); err != nil {
		t.Fatal(err)
	}
	first := receive(t, c, u, 1, 0)
	if len(first) != 1 {
		t.Fatal("no message")
	}
	// The first receiver stalls past its visibility timeout; a second one
	// gets the message.
	second := receive(t, c, u, 1, 5)
	if len(second) != 1 || second[0].Attributes["ApproximateReceiveCount"] != "2" {
		t.Fatalf("redelivery: %+v", second)
	}
	// The stalled receiver wakes and deletes with its old handle: accepted
	// as on SQS, but the newer delivery stays.
	if _, err := c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &u, ReceiptHandle: first[0].ReceiptHandle}); err != nil {
		t.Fatal(err)
	}
	_, err := c.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: &u, ReceiptHandle: first[0].ReceiptHandle, VisibilityTimeout: 0})
	var notInflight *types.MessageNotInflight
	if !errors.As(err, &notInflight) {
		t.Fatalf("visibility change with a stale handle: %v", err)
	}
	third := receive(t, c, u, 1, 5)
	if len(third) != 1 || third[0].Attributes["ApproximateReceiveCount"] != "3" {
		t.Fatalf("message lost to a stale delete: %+v", third)
	}
	// The newest handle deletes it, even after its own timeout ran out
	// (nobody received it since).
	time.Sleep(1500 * time.Millisecond)
	if _, err := c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &u, ReceiptHandle: third[0].ReceiptHandle}); err != nil {
		t.Fatal(err)
	}
	if left := receive(t, c, u, 1, 2); len(left) != 0 {
		t.Fatalf("deleted message came back: %+v", left)
	}
	if !strings.Contains(metricsText(t, s), `stratus_queue_stale_deletes_total{queue="fenced"} 1`) {
		t.Error("stale delete not counted")
	}
}

func metricsText(t testing.TB, s *server) string {
	t.Helper()
	resp, err := http.Get(s.Endpoint + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestSQSRedrive: a message received maxReceiveCount times without being
// deleted moves to the dead-letter queue, whole.
func TestSQSRedrive(t *testing.T) {
	s := startServer(t, "")
	c := s.sqs()
	ctx := context.Background()
	dlq := createQueue(t, c, "orders-dlq", nil)
	dlqArn := queueAttrs(t, c, dlq)["QueueArn"]
	src := createQueue(t, c, "orders-src", map[string]string{
		"VisibilityTimeout": "1",
		"RedrivePolicy":     `{"deadLetterTargetArn":"` + dlqArn + `","maxReceiveCount":"2"}`,
	})
	sent, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &src, MessageBody: aws.String("poison"),
		MessageAttributes: map[string]types.MessageAttributeValue{"k": {DataType: aws.String("String"), StringValue: aws.String("v")}}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		got := receive(t, c, src, 1, 5)
		if len(got) != 1 || got[0].Attributes["ApproximateReceiveCount"] != strconv.Itoa(i) {
			t.Fatalf("receive %d: %+v", i, got)
		}
	}
	// The third receive finds it over the limit and moves it.
	if got := receive(t, c, src, 1, 3); len(got) != 0 {
		t.Fatalf("received past maxReceiveCount: %+v", got)
	}
	dead := receive(t, c, dlq, 1, 5)
	if len(dead) != 1 || *dead[0].MessageId != *sent.MessageId || *dead[0].Body != "poison" || *dead[0].MessageAttributes["k"].StringValue != "v" {
		t.Fatalf("dead letter: %+v", dead)
	}
	srcs, err := c.ListDeadLetterSourceQueues(ctx, &sqs.ListDeadLetterSourceQueuesInput{QueueUrl: &dlq})
	if err != nil || len(srcs.QueueUrls) != 1 || srcs.QueueUrls[0] != src {
		t.Fatalf("dead-letter sources: %v %v", err, srcs)
	}
	if !strings.Contains(metricsText(t, s), `stratus_queue_messages_dead_lettered_total{queue="orders-src"} 1`) {
		t.Error("dead-lettered message not counted")
	}
}

// TestSQSQueryProtocol speaks the query protocol (form in, XML out) the
// way older SDKs do, then runs Debian's AWS CLI, which uses it.
func TestSQSQueryProtocol(t *testing.T) {
	s := startServer(t, "")
	post := func(form url.Values) (int, string) {
		resp, err := http.PostForm(s.Endpoint+"/", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := post(url.Values{"Action": {"CreateQueue"}, "QueueName": {"xmlq"}, "Attribute.1.Name": {"VisibilityTimeout"}, "Attribute.1.Value": {"7"}})
	qurl := s.Endpoint + "/000000000000/xmlq"
	if code != 200 || !strings.Contains(body, "<QueueUrl>"+qurl+"</QueueUrl>") {
		t.Fatalf("create: %d %s", code, body)
	}
	code, body = post(url.Values{"Action": {"SendMessage"}, "QueueUrl": {qurl}, "MessageBody": {"a<b>&c"},
		"MessageAttribute.1.Name": {"n"}, "MessageAttribute.1.Value.DataType": {"Number"}, "MessageAttribute.1.Value.StringValue": {"5"}})
	if code != 200 || !strings.Contains(body, "<MD5OfMessageBody>") || !strings.Contains(body, "<MessageId>") {
		t.Fatalf("send: %d %s", code, body)
	}
	code, body = post(url.Values{"Action": {"ReceiveMessage"}, "QueueUrl": {qurl}, "AttributeName.1": {"All"}, "MessageAttributeName.1": {"All"}})
	if code != 200 || !strings.Contains(body, "<Body>a&lt;b&gt;&amp;c</Body>") || !strings.Contains(body, "<Name>ApproximateReceiveCount</Name><Value>1</Value>") ||
		!strings.Contains(body, "<MessageAttribute><Name>n</Name><Value><StringValue>5</StringValue><DataType>Number</DataType></Value></MessageAttribute>") {
		t.Fatalf("receive: %d %s", code, body)
	}
	code, body = post(url.Values{"Action": {"GetQueueUrl"}, "QueueName": {"nope"}})
	if code != 400 || !strings.Contains(body, "<Code>AWS.SimpleQueueService.NonExistentQueue</Code>") || !strings.Contains(body, "<Type>Sender</Type>") {
		t.Fatalf("unknown queue: %d %s", code, body)
	}
	code, body = post(url.Values{"Action": {"Frobnicate"}})
	if code != 400 || !strings.Contains(body, "<Code>InvalidAction</Code>") {
		t.Fatalf("unknown action: %d %s", code, body)
	}

	// Debian's awscli (2.9, botocore 1.29) still speaks query to SQS.
	const debianAWS = "/usr/bin/aws"
	if _, err := os.Stat(debianAWS); err != nil {
		t.Fatal("Debian's awscli (/usr/bin/aws) is required for the query protocol; .ci/run installs it")
	}
	env := s.clientEnv(t.TempDir())
	cli := func(args ...string) string {
		t.Helper()
		out, err := runCmd(t, env, debianAWS, append([]string{"--endpoint-url", s.Endpoint, "--region", "us-east-1", "--output", "text"}, args...)...)
		if err != nil {
			t.Fatalf("aws %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(out)
	}
	cu := cli("sqs", "create-queue", "--queue-name", "cliq", "--attributes", "VisibilityTimeout=9")
	cli("sqs", "send-message-batch", "--queue-url", cu, "--entries", "Id=a,MessageBody=alpha", "Id=b,MessageBody=beta")
	got := cli("sqs", "receive-message", "--queue-url", cu, "--max-number-of-messages", "10", "--wait-time-seconds", "2",
		"--attribute-names", "All", "--query", "Messages[].[Body,ReceiptHandle]")
	lines := strings.Split(got, "\n")
	if len(lines) != 2 || !strings.Contains(got, "alpha") || !strings.Contains(got, "beta") {
		t.Fatalf("cli receive: %q", got)
	}
	for _, l := range lines {
		cli("sqs", "delete-message", "--queue-url", cu, "--receipt-handle", strings.Fields(l)[1])
	}
	if n := cli("sqs", "get-queue-attributes", "--queue-url", cu, "--attribute-names", "All", "--query", "Attributes.[VisibilityTimeout,ApproximateNumberOfMessages,ApproximateNumberOfMessagesNotVisible]"); strings.Join(strings.Fields(n), " ") != "9 0 0" {
		t.Fatalf("cli attributes: %q", n)
	}
	out, err := runCmd(t, env, debianAWS, "--endpoint-url", s.Endpoint, "--region", "us-east-1", "sqs", "get-queue-url", "--queue-name", "nope")
	if err == nil || !strings.Contains(out, "NonExistentQueue") {
		t.Fatalf("cli unknown queue: %v %s", err, out)
	}
}

const boto3SQSScript = `
import sys, boto3, botocore
ep = sys.argv[1]
sqs = boto3.client("sqs", endpoint_url=ep, region_name="us-east-1")
url = sqs.create_queue(QueueName="boto", Attributes={"VisibilityTimeout": "15"})["QueueUrl"]
sqs.send_message(QueueUrl=url, MessageBody="hi", MessageAttributes={"a": {"DataType": "String", "StringValue": "b"}})
r = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=2, MessageAttributeNames=["All"], AttributeNames=["All"])
m = r["Messages"][0]
assert m["Body"] == "hi" and m["MessageAttributes"]["a"]["StringValue"] == "b", m
assert m["Attributes"]["ApproximateReceiveCount"] == "1", m
sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
try:
    sqs.get_queue_url(QueueName="nope")
    raise SystemExit("no error for a missing queue")
except sqs.exceptions.QueueDoesNotExist:
    pass
a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
assert a["ApproximateNumberOfMessages"] == "0" and a["VisibilityTimeout"] == "15", a
print("boto3 sqs ok")
`

// TestSQSBoto3 runs the queue API from boto3.
func TestSQSBoto3(t *testing.T) {
	s := startServer(t, "")
	dir := t.TempDir()
	script := filepath.Join(dir, "t.py")
	if err := os.WriteFile(script, []byte(boto3SQSScript), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runCmd(t, s.clientEnv(dir), boto3Python(t), script, s.Endpoint)
	if err != nil || !strings.Contains(out, "boto3 sqs ok") {
		t.Fatalf("boto3: %v\n%s", err, out)
	}
}

// TestSQSTagsAndBatches covers the smaller operations: tags at creation
// and after, selected attributes, and visibility changes in a batch.
func TestSQSTagsAndBatches(t *testing.T) {
	s := startServer(t, "")
	c := s.sqs()
	ctx := context.Background()
	out, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("tagged"), Tags: map[string]string{"team": "a"}})
	if err != nil {
		t.Fatal(err)
	}
	u := *out.QueueUrl
	if _, err := c.TagQueue(ctx, &sqs.TagQueueInput{QueueUrl: &u, Tags: map[string]string{"env": "dev", "team": "b"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UntagQueue(ctx, &sqs.UntagQueueInput{QueueUrl: &u, TagKeys: []string{"env"}}); err != nil {
		t.Fatal(err)
	}
	tags, err := c.ListQueueTags(ctx, &sqs.ListQueueTagsInput{QueueUrl: &u})
	if err != nil || len(tags.Tags) != 1 || tags.Tags["team"] != "b" {
		t.Fatalf("tags: %v %v", err, tags)
	}
	attrs, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &u, AttributeNames: []types.QueueAttributeName{"QueueArn", "DelaySeconds"}})
	if err != nil || len(attrs.Attributes) != 2 || attrs.Attributes["DelaySeconds"] != "0" {
		t.Fatalf("selected attributes: %v %v", err, attrs)
	}
	if _, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &u, AttributeNames: []types.QueueAttributeName{"Bogus"}}); errorCode(err) != "InvalidAttributeName" {
		t.Fatalf("unknown attribute: %v", err)
	}
	for i := range 3 {
		if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &u, MessageBody: aws.String(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	msgs := receive(t, c, u, 10, 1)
	if len(msgs) != 3 {
		t.Fatalf("received %d", len(msgs))
	}
	var entries []types.ChangeMessageVisibilityBatchRequestEntry
	for i, m := range msgs {
		entries = append(entries, types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0})
	}
	entries = append(entries, types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String("bad"), ReceiptHandle: aws.String("junk"), VisibilityTimeout: 0})
	res, err := c.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: &u, Entries: entries})
	if err != nil || len(res.Successful) != 3 || len(res.Failed) != 1 || *res.Failed[0].Code != "ReceiptHandleIsInvalid" {
		t.Fatalf("visibility batch: %v %+v", err, res)
	}
	if again := receive(t, c, u, 10, 1); len(again) != 3 {
		t.Fatalf("after visibility 0 in a batch: %d visible", len(again))
	}
	_, err = c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &u, MaxNumberOfMessages: 11})
	if errorCode(err) != "InvalidParameterValue" {
		t.Fatalf("11 messages: %v", err)
	}
}

// TestSQSSendThenShortPoll: a message whose send was answered is there
// for a short poll (no wait) sent right after.
func TestSQSSendThenShortPoll(t *testing.T) {
	s := startServer(t, "")
	c := s.sqs()
	ctx := context.Background()
	u := createQueue(t, c, "short", nil)
	for i := range 200 {
		// Changing attributes updates the store's consumer; a receive just
		// after must still find the message.
		if i%2 == 0 {
			if _, err := c.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: &u, Attributes: map[string]string{"VisibilityTimeout": fmt.Sprint(20 + i%7)}}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &u, MessageBody: aws.String(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
		got := receive(t, c, u, 1, 0)
		if len(got) != 1 || *got[0].Body != fmt.Sprint(i) {
			t.Fatalf("round %d: short poll right after a send got %v", i, got)
		}
		if _, err := c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &u, ReceiptHandle: got[0].ReceiptHandle}); err != nil {
			t.Fatal(err)
		}
	}
}
