package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	stypes "github.com/aws/aws-sdk-go-v2/service/scheduler/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	natsserver "github.com/nats-io/nats-server/v2/server"
)

func (s *server) scheduler() *scheduler.Client {
	return scheduler.New(scheduler.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.Endpoint),
		Credentials: s.creds()})
}

func TestSchedules(t *testing.T) {
	s := startServer(t, "")
	c := s.lambda()
	sc := s.scheduler()
	ctx := context.Background()
	fn := createFunction(t, c, "ticker", goZip(t), fnOpts{})
	target := &stypes.Target{Arn: fn.FunctionArn, RoleArn: aws.String("arn:aws:iam::000000000000:role/x"), Input: aws.String(`{"print":"tick-marker"}`)}
	off := &stypes.FlexibleTimeWindow{Mode: stypes.FlexibleTimeWindowModeOff}

	for _, bad := range []string{"rate(0 minutes)", "cron(0 12 * * * *)", "every now and then"} {
		if _, err := sc.CreateSchedule(ctx, &scheduler.CreateScheduleInput{Name: aws.String("bad"), ScheduleExpression: aws.String(bad), Target: target, FlexibleTimeWindow: off}); errorCode(err) != "ValidationException" {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if _, err := sc.CreateSchedule(ctx, &scheduler.CreateScheduleInput{Name: aws.String("bad"), ScheduleExpression: aws.String("rate(1 minute)"),
		Target: &stypes.Target{Arn: aws.String("arn:aws:lambda:us-east-1:000000000000:function:nope"), RoleArn: target.RoleArn}, FlexibleTimeWindow: off}); errorCode(err) != "ValidationException" {
		t.Errorf("missing target: %v", err)
	}

	out, err := sc.CreateSchedule(ctx, &scheduler.CreateScheduleInput{Name: aws.String("every2s"), ScheduleExpression: aws.String("rate(2 seconds)"), Target: target, FlexibleTimeWindow: off})
	if err != nil || aws.ToString(out.ScheduleArn) != "arn:aws:scheduler:us-east-1:000000000000:schedule/default/every2s" {
		t.Fatalf("create: %v %+v", err, out)
	}
	if _, err := sc.CreateSchedule(ctx, &scheduler.CreateScheduleInput{Name: aws.String("every2s"), ScheduleExpression: aws.String("rate(2 seconds)"), Target: target, FlexibleTimeWindow: off}); errorCode(err) != "ConflictException" {
		t.Errorf("duplicate: %v", err)
	}
	count := func() int { return strings.Count(logsOf(t, s, "ticker"), "tick-marker") }
	waitFor(t, 15*time.Second, "two ticks", func() bool { return count() >= 2 })

	got, err := sc.GetSchedule(ctx, &scheduler.GetScheduleInput{Name: aws.String("every2s")})
	if err != nil || aws.ToString(got.ScheduleExpression) != "rate(2 seconds)" || got.State != stypes.ScheduleStateEnabled || aws.ToString(got.Target.Arn) != aws.ToString(fn.FunctionArn) {
		t.Errorf("get: %v %+v", err, got)
	}
	list, err := sc.ListSchedules(ctx, &scheduler.ListSchedulesInput{})
	if err != nil || len(list.Schedules) != 1 {
		t.Errorf("list: %v", err)
	}
	// Disabled: no more ticks.
	if _, err := sc.UpdateSchedule(ctx, &scheduler.UpdateScheduleInput{Name: aws.String("every2s"), ScheduleExpression: aws.String("rate(2 seconds)"), Target: target, FlexibleTimeWindow: off, State: stypes.ScheduleStateDisabled}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	before := count()
	time.Sleep(4500 * time.Millisecond)
	if after := count(); after != before {
		t.Errorf("disabled schedule still fired: %d then %d", before, after)
	}
	if _, err := sc.DeleteSchedule(ctx, &scheduler.DeleteScheduleInput{Name: aws.String("every2s")}); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.GetSchedule(ctx, &scheduler.GetScheduleInput{Name: aws.String("every2s")}); errorCode(err) != "ResourceNotFoundException" {
		t.Errorf("deleted: %v", err)
	}

	// A one-shot at() fires once, then deletes itself.
	when := time.Now().UTC().Add(2 * time.Second).Format("2006-01-02T15:04:05")
	oneShot := &stypes.Target{Arn: fn.FunctionArn, RoleArn: target.RoleArn, Input: aws.String(`{"print":"once-marker"}`)}
	if _, err := sc.CreateSchedule(ctx, &scheduler.CreateScheduleInput{Name: aws.String("once"), ScheduleExpression: aws.String("at(" + when + ")"),
		Target: oneShot, FlexibleTimeWindow: off, ActionAfterCompletion: stypes.ActionAfterCompletionDelete}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the one-shot", func() bool { return strings.Contains(logsOf(t, s, "ticker"), "once-marker") })
	waitFor(t, 5*time.Second, "the one-shot to delete itself", func() bool {
		_, err := sc.GetSchedule(ctx, &scheduler.GetScheduleInput{Name: aws.String("once")})
		return errorCode(err) == "ResourceNotFoundException"
	})
}

// startNATS runs a NATS server with JetStream (synced writes) for nodes
// to share, on loopback.
func startNATS(t *testing.T) *natsserver.Server {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), SyncAlways: true, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	return ns
}

// TestScheduleOnceAcrossNodes: two nodes on one NATS fire each tick once.
func TestScheduleOnceAcrossNodes(t *testing.T) {
	ns := startNATS(t)
	var mu sync.Mutex
	hits := 0
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sink := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		mu.Lock()
		hits++
		mu.Unlock()
	})}
	go sink.Serve(ln)
	defer sink.Close()

	// The function reports to the test's loopback: the host's network.
	a := startServer(t, "", "--nats-url", ns.ClientURL(), "--host-network", "tick-report")
	b := startServer(t, "", "--nats-url", ns.ClientURL(), "--host-network", "tick-report")
	fn := createFunction(t, a.lambda(), "tick-report", makeZip(t, map[string][]byte{"app.py": []byte(reporter)}), fnOpts{runtime: "python3.11", handler: "app.handler"})
	_ = b
	input := `{"marker":"tick","url":"http://` + ln.Addr().String() + `/"}`
	if _, err := a.scheduler().CreateSchedule(context.Background(), &scheduler.CreateScheduleInput{Name: aws.String("shared"), ScheduleExpression: aws.String("rate(1 second)"),
		Target:             &stypes.Target{Arn: fn.FunctionArn, RoleArn: aws.String("arn:aws:iam::000000000000:role/x"), Input: aws.String(input)},
		FlexibleTimeWindow: &stypes.FlexibleTimeWindow{Mode: stypes.FlexibleTimeWindowModeOff}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the first tick", func() bool { mu.Lock(); defer mu.Unlock(); return hits > 0 })
	mu.Lock()
	start := hits
	mu.Unlock()
	time.Sleep(6 * time.Second)
	mu.Lock()
	n := hits - start
	mu.Unlock()
	// Six seconds of a one-second rate on two nodes: about six runs, not twelve.
	if n < 4 || n > 8 {
		t.Errorf("%d runs in 6 s of rate(1 second) on two nodes", n)
	}
}

// TestScheduleDeadLetter: a schedule's RetryPolicy and DeadLetterConfig
// are stored and returned; a tick whose function is gone goes to the
// dead-letter queue with Scheduler's attributes.
func TestScheduleDeadLetter(t *testing.T) {
	s := startServer(t, "")
	ctx := context.Background()
	c := s.lambda()
	sc := s.scheduler()
	q := s.sqs()
	dlq := createQueue(t, q, "sched-dlq", nil)
	fn := createFunction(t, c, "doomed", goZip(t), fnOpts{})
	off := &stypes.FlexibleTimeWindow{Mode: stypes.FlexibleTimeWindowModeOff}
	target := &stypes.Target{Arn: fn.FunctionArn, RoleArn: aws.String("arn:aws:iam::000000000000:role/x"), Input: aws.String(`{"tick":"lost"}`),
		RetryPolicy:      &stypes.RetryPolicy{MaximumEventAgeInSeconds: aws.Int32(120), MaximumRetryAttempts: aws.Int32(3)},
		DeadLetterConfig: &stypes.DeadLetterConfig{Arn: aws.String("arn:aws:sqs:us-east-1:000000000000:sched-dlq")}}
	if _, err := sc.CreateSchedule(ctx, &scheduler.CreateScheduleInput{Name: aws.String("bad-retry"), ScheduleExpression: aws.String("rate(1 minute)"),
		Target: &stypes.Target{Arn: fn.FunctionArn, RoleArn: target.RoleArn, RetryPolicy: &stypes.RetryPolicy{MaximumRetryAttempts: aws.Int32(200)}}, FlexibleTimeWindow: off}); errorCode(err) != "ValidationException" {
		t.Errorf("200 retries: %v", err)
	}
	if _, err := sc.CreateSchedule(ctx, &scheduler.CreateScheduleInput{Name: aws.String("doomed"), ScheduleExpression: aws.String("rate(2 seconds)"), Target: target, FlexibleTimeWindow: off}); err != nil {
		t.Fatal(err)
	}
	got, err := sc.GetSchedule(ctx, &scheduler.GetScheduleInput{Name: aws.String("doomed")})
	if err != nil || aws.ToInt32(got.Target.RetryPolicy.MaximumRetryAttempts) != 3 || aws.ToInt32(got.Target.RetryPolicy.MaximumEventAgeInSeconds) != 120 ||
		got.Target.DeadLetterConfig == nil || aws.ToString(got.Target.DeadLetterConfig.Arn) != "arn:aws:sqs:us-east-1:000000000000:sched-dlq" {
		t.Fatalf("get: %v %+v", err, got)
	}
	if _, err := c.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("doomed")}); err != nil {
		t.Fatal(err)
	}
	var msgs *sqs.ReceiveMessageOutput
	waitFor(t, 15*time.Second, "a dead letter", func() bool {
		msgs, err = q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(dlq), WaitTimeSeconds: 2, MessageAttributeNames: []string{"All"}})
		return err == nil && len(msgs.Messages) > 0
	})
	m := msgs.Messages[0]
	attr := func(k string) string {
		if v, ok := m.MessageAttributes[k]; ok {
			return aws.ToString(v.StringValue)
		}
		return ""
	}
	if aws.ToString(m.Body) != `{"tick":"lost"}` || attr("ERROR_CODE") != "ResourceNotFoundException" ||
		attr("SCHEDULE_ARN") != "arn:aws:scheduler:us-east-1:000000000000:schedule/default/doomed" || attr("TARGET_ARN") != aws.ToString(fn.FunctionArn) {
		t.Errorf("dead letter %s %v", aws.ToString(m.Body), m.MessageAttributes)
	}
}
