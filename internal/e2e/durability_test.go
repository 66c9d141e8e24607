package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	ltypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	natsserver "github.com/nats-io/nats-server/v2/server"
)

// TestKill9AndRestart: definitions and code survive a SIGKILL of the
// server, and no instance outlives it.
func TestKill9AndRestart(t *testing.T) {
	s := startServer(t, "")
	c := s.lambda()
	ctx := context.Background()
	want := map[string]string{}
	for i := range 5 {
		name := fmt.Sprintf("durable-%d", i)
		out := createFunction(t, c, name, goZip(t), fnOpts{memory: int32(128 + i), env: map[string]string{"NUM": fmt.Sprint(i)}})
		want[name] = aws.ToString(out.CodeSha256)
	}
	// An update acknowledged just before the crash must survive too.
	upd, err := c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("durable-0"), Description: aws.String("last write")})
	if err != nil {
		t.Fatal(err)
	}
	invoke(t, c, "durable-1", `{}`)
	inst := s.instances()
	if len(inst) != 1 {
		t.Fatalf("instances %v", inst)
	}

	s.kill()
	waitFor(t, 5*time.Second, "instance to die with the server", func() bool { return !alive(inst[0]) })
	s.restart()
	c = s.lambda()

	for name, sha := range want {
		got, err := c.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String(name)})
		if err != nil {
			t.Fatalf("%s after kill -9: %v", name, err)
		}
		if aws.ToString(got.Configuration.CodeSha256) != sha {
			t.Errorf("%s: code sha changed", name)
		}
	}
	got, err := c.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("durable-0")})
	if err != nil || aws.ToString(got.Description) != "last write" || aws.ToString(got.RevisionId) != aws.ToString(upd.RevisionId) {
		t.Errorf("last update lost: %v %+v", err, got)
	}
	r2 := decodeReply(t, invoke(t, c, "durable-3", `{"env":"NUM"}`).Payload)
	if r2.EnvValue != "3" {
		t.Errorf("after restart: %+v", r2)
	}
	list, err := c.ListFunctions(ctx, &lambda.ListFunctionsInput{})
	if err != nil || len(list.Functions) != 5 {
		t.Errorf("list after restart: %v %d", err, len(list.Functions))
	}
}

// TestGracefulShutdown: SIGTERM lets in-flight invocations finish, stops
// every instance and exits cleanly.
func TestGracefulShutdown(t *testing.T) {
	s := startServer(t, "")
	c := s.lambda()
	createFunction(t, c, "drain", goZip(t), fnOpts{timeout: 10})
	createFunction(t, c, "drain-idle", goZip(t), fnOpts{})
	invoke(t, c, "drain-idle", `{}`)
	idle := s.instances()

	var wg sync.WaitGroup
	var out *lambda.InvokeOutput
	var invErr error
	wg.Go(func() {
		out, invErr = c.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("drain"), Payload: []byte(`{"sleepMs":1500,"name":"drained"}`)})
	})
	waitFor(t, 5*time.Second, "second instance", func() bool { return len(s.instances()) == 2 })
	busy := s.instances()
	if err := s.stop(15 * time.Second); err != nil {
		t.Fatalf("stop: %v\n%s", err, s.out.String())
	}
	wg.Wait()
	if invErr != nil || !strings.Contains(string(out.Payload), "hello, drained") {
		t.Fatalf("in-flight invocation during shutdown: %v %s", invErr, out.Payload)
	}
	for _, pid := range append(busy, idle...) {
		if alive(pid) {
			t.Errorf("instance %d survived shutdown", pid)
		}
	}
}

// TestExternalNATS runs against a NATS server of its own instead of the
// embedded one, and state lives there.
func TestExternalNATS(t *testing.T) {
	ns, err := natsserver.NewServer(&natsserver.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), SyncAlways: true, NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	url := ns.ClientURL()

	s := startServer(t, "", "--nats-url", url)
	c := s.lambda()
	createFunction(t, c, "ext", goZip(t), fnOpts{})
	if r := decodeReply(t, invoke(t, c, "ext", `{"name":"nats"}`).Payload); r.Message != "hello, nats" {
		t.Fatalf("reply %+v", r)
	}
	// A second node on the same NATS, with its own data folder, sees the
	// function and runs it from the shared code store.
	s2 := startServer(t, "", "--nats-url", url)
	c2 := s2.lambda()
	if r := decodeReply(t, invoke(t, c2, "ext", `{"name":"node two"}`).Payload); r.Message != "hello, node two" {
		t.Fatalf("second node reply %+v", r)
	}
	// An asynchronous event accepted by one node runs on one of them.
	if _, err := c2.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("ext"), InvocationType: "Event", Payload: []byte(`{"print":"external-async"}`)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the event to run", func() bool {
		return strings.Contains(logsOf(t, s, "ext"), "external-async")
	})
	// A queue created on one node is shared: sent on one, received and
	// deleted on the other, the same delivery fenced across nodes.
	q1, q2 := s.sqs(), s2.sqs()
	u := createQueue(t, q1, "shared", map[string]string{"VisibilityTimeout": "1"})
	if _, err := q1.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &u, MessageBody: aws.String("across")}); err != nil {
		t.Fatal(err)
	}
	var got []sqstypes.Message
	waitFor(t, 10*time.Second, "the second node to receive", func() bool {
		out, err := q2.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &u, WaitTimeSeconds: 1})
		if err != nil {
			return false
		}
		got = out.Messages
		return len(got) == 1
	})
	again := receive(t, q1, u, 1, 5) // redelivered to node one after the timeout
	if len(again) != 1 || *again[0].Body != "across" {
		t.Fatalf("redelivery on node one: %+v", again)
	}
	if _, err := q2.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: &u, ReceiptHandle: got[0].ReceiptHandle}); err != nil {
		t.Fatal(err)
	}
	if _, err := q1.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: &u, ReceiptHandle: again[0].ReceiptHandle}); err != nil {
		t.Fatal(err)
	}
	if left := receive(t, q2, u, 1, 2); len(left) != 0 {
		t.Fatalf("message left after delete: %+v", left)
	}
	// A deletion on one node reaches the other through the watch.
	if _, err := c.DeleteFunction(context.Background(), &lambda.DeleteFunctionInput{FunctionName: aws.String("ext")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "delete to reach the second node", func() bool {
		_, err := c2.GetFunction(context.Background(), &lambda.GetFunctionInput{FunctionName: aws.String("ext")})
		return errorCode(err) == "ResourceNotFoundException"
	})
}

// TestNATSOutage: the external NATS goes away and comes back while Stratus
// runs. Meanwhile nothing is acknowledged that is not stored, the health
// check says so, and afterwards work resumes without a restart and every
// acknowledged event runs.
func TestNATSOutage(t *testing.T) {
	port, err := strconv.Atoi(strings.Split(freeAddr(t), ":")[1])
	if err != nil {
		t.Fatal(err)
	}
	storeDir := t.TempDir()
	startNATS := func() *natsserver.Server {
		ns, err := natsserver.NewServer(&natsserver.Options{
			Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: storeDir, SyncAlways: true, NoLog: true, NoSigs: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		ns.Start()
		if !ns.ReadyForConnections(10 * time.Second) {
			t.Fatal("nats not ready")
		}
		return ns
	}
	ns := startNATS()
	t.Cleanup(func() { ns.Shutdown() })

	s := startServer(t, "", "--nats-url", ns.ClientURL())
	ctx := context.Background()
	// No retries: each call's own answer is what is checked.
	lc := lambda.New(lambda.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.Endpoint), RetryMaxAttempts: 1,
		Credentials: s.creds()})
	qc := sqs.New(sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.Endpoint), RetryMaxAttempts: 1,
		Credentials: s.creds()})
	createFunction(t, lc, "outage", goZip(t), fnOpts{})
	okQ := createQueue(t, qc, "outage-ok", nil)
	okARN := queueAttrs(t, qc, okQ)["QueueArn"]
	if _, err := lc.PutFunctionEventInvokeConfig(ctx, &lambda.PutFunctionEventInvokeConfigInput{FunctionName: aws.String("outage"),
		DestinationConfig: &ltypes.DestinationConfig{OnSuccess: &ltypes.OnSuccess{Destination: &okARN}}}); err != nil {
		t.Fatal(err)
	}
	accepted := map[string]bool{}
	event := func(i int) error {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		out, err := lc.Invoke(cctx, &lambda.InvokeInput{FunctionName: aws.String("outage"), InvocationType: ltypes.InvocationTypeEvent,
			Payload: []byte(fmt.Sprintf(`{"name":"e%d"}`, i))})
		if err != nil {
			return err
		}
		if out.StatusCode != 202 {
			return fmt.Errorf("status %d", out.StatusCode)
		}
		id, _ := awsmiddleware.GetRequestIDMetadata(out.ResultMetadata)
		accepted[id] = true
		return nil
	}
	for i := range 5 {
		if err := event(i); err != nil {
			t.Fatal(err)
		}
	}
	// Synchronous invokes of a warm instance need no store; their usage
	// records wait for it.
	createFunction(t, lc, "outage-sync", goZip(t), fnOpts{})
	ran := 0
	syncInvoke := func(line string) bool {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		out, err := lc.Invoke(cctx, &lambda.InvokeInput{FunctionName: aws.String("outage-sync"), Payload: []byte(`{"print":"` + line + `"}`)})
		if err != nil || out.FunctionError != nil {
			return false
		}
		ran++
		return true
	}
	if !syncInvoke("printed-before") {
		t.Fatal("synchronous invoke failed before the outage")
	}
	// A queue trigger whose poller is waiting when the store goes.
	createFunction(t, lc, "outage-esm", goZip(t), fnOpts{})
	inQ := createQueue(t, qc, "outage-in", nil)
	inARN := queueAttrs(t, qc, inQ)["QueueArn"]
	if _, err := lc.CreateEventSourceMapping(ctx, &lambda.CreateEventSourceMappingInput{FunctionName: aws.String("outage-esm"), EventSourceArn: &inARN}); err != nil {
		t.Fatal(err)
	}

	ns.Shutdown()
	waitFor(t, 15*time.Second, "the health check to report the store down", func() bool {
		resp, err := http.Get(s.Endpoint + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 503
	})
	refused := 0
	down := time.Now()
	for i := 100; i < 103; i++ {
		if err := event(i); err != nil {
			refused++
			if code := httpStatus(err); code != 503 || !strings.Contains(err.Error(), "cannot reach its store") {
				t.Errorf("event during the outage: %v, want a 503 saying why", err)
			}
		}
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		_, err := qc.SendMessage(cctx, &sqs.SendMessageInput{QueueUrl: &okQ, MessageBody: aws.String("during")})
		cancel()
		if err == nil {
			t.Error("a message was accepted while the store was down")
		} else if errorCode(err) != "ServiceUnavailable" {
			t.Errorf("message during the outage: %v, want ServiceUnavailable", err)
		}
	}
	if refused == 0 {
		t.Error("every event was accepted while the store was down")
	}
	during := 0
	for range 3 {
		if syncInvoke("printed-while-down") {
			during++
		}
	}
	if during < 2 {
		t.Errorf("warm synchronous invokes failed while the store was down (%d of 3 ran)", during)
	}

	t.Logf("outage calls took %v", time.Since(down))
	ns = startNATS()
	up := time.Now()
	waitFor(t, 30*time.Second, "events to be accepted again", func() bool { return event(200) == nil })
	t.Logf("accepting again after %v", time.Since(up))
	up = time.Now()
	for i := 300; i < 305; i++ {
		if err := event(i); err != nil {
			t.Fatalf("after the outage: %v", err)
		}
	}
	// Every acknowledged event ran once at least: its success record names it.
	seen := map[string]bool{}
	waitFor(t, 60*time.Second, "a success record for every accepted event", func() bool {
		for _, m := range receive(t, qc, okQ, 10, 1) {
			var rec struct {
				RequestContext struct {
					RequestID string `json:"requestId"`
				} `json:"requestContext"`
			}
			if err := json.Unmarshal([]byte(*m.Body), &rec); err == nil {
				seen[rec.RequestContext.RequestID] = true
			}
			_, _ = qc.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &okQ, ReceiptHandle: m.ReceiptHandle})
		}
		for id := range accepted {
			if !seen[id] {
				return false
			}
		}
		return true
	})
	t.Logf("%d events accepted, %d refused during the outage; records after %v", len(accepted), refused, time.Since(up))
	// Every synchronous run is billed, those during the outage included.
	waitFor(t, 10*time.Second, "usage of every synchronous run", func() bool {
		return s.usage(t, "outage-sync").Requests == ran
	})
	// The in-memory views follow the store again: a function created now
	// runs.
	createFunction(t, lc, "after-outage", goZip(t), fnOpts{})
	if r := decodeReply(t, invoke(t, lc, "after-outage", `{"name":"again"}`).Payload); r.Message != "hello, again" {
		t.Errorf("function created after the outage: %+v", r)
	}
	// The queue trigger polls again.
	if _, err := qc.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &inQ, MessageBody: aws.String(`{"after":"outage"}`)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the queue trigger to take a message sent after the outage", func() bool {
		a := queueAttrs(t, qc, inQ)
		return a["ApproximateNumberOfMessages"] == "0" && a["ApproximateNumberOfMessagesNotVisible"] == "0" &&
			strings.Contains(logsOf(t, s, "outage-esm"), "REPORT")
	})
	// And their log lines are kept.
	waitFor(t, 10*time.Second, "log lines written while the store was down", func() bool {
		return strings.Count(logsOf(t, s, "outage-sync"), "printed-while-down") == during
	})
}

// TestDataInMemoryWarns: a data folder on tmpfs, where fsync keeps nothing
// across a reboot, is named at start.
func TestDataInMemoryWarns(t *testing.T) {
	var st syscall.Statfs_t
	if err := syscall.Statfs("/dev/shm", &st); err != nil || st.Type != 0x01021994 { // TMPFS_MAGIC
		t.Skip("no tmpfs at /dev/shm on this host")
	}
	dir, err := os.MkdirTemp("/dev/shm", "stratus-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	s := startServerIn(t, dir, nil)
	if !strings.Contains(s.out.String(), "the data folder is in memory") {
		t.Errorf("no warning:\n%s", s.out.String())
	}
}

// slowReporter tells the sink when an event starts and ends, and sleeps
// in between: as long as the event says, or a minute the first time it
// runs an event while SLOW is set.
const slowReporter = `
import json, os, time, urllib.request

def post(obj):
    with urllib.request.urlopen(urllib.request.Request(os.environ["SINK"], data=json.dumps(obj).encode(), method="POST"), timeout=5) as r:
        return json.load(r)

def handler(event, context):
    name = event["name"] if "name" in event else event["Records"][0]["body"]
    seen = post({"start": name})["seen"]
    if "sleep" in event:
        time.sleep(event["sleep"])
    elif os.environ.get("SLOW") == "1" and seen == 1:
        time.sleep(60)
    post({"done": name})
    return {"ok": name}
`

// TestBoundedShutdown: with a synchronous invocation, an async event and a
// queue batch each running for a minute, SIGTERM and a 2 s drain timeout
// end the server within 5 s; the async event cut off comes back after a
// restart and runs, and the cut is not counted as a function error. No
// cgroup is left behind.
func TestBoundedShutdown(t *testing.T) {
	sink := newJSONSink(t)
	dir := t.TempDir()
	s := startServer(t, dir, "--drain-timeout", "2s", "--host-network", "slow")
	c, qc := s.lambda(), s.sqs()
	ctx := context.Background()
	createFunction(t, c, "slow", makeZip(t, map[string][]byte{"app.py": []byte(slowReporter)}),
		fnOpts{runtime: "python3.11", handler: "app.handler", timeout: 90, env: map[string]string{"SINK": sink.URL, "SLOW": "1"}})
	// A queue batch cut off returns after its visibility timeout (here
	// stretched to the function's 90 s), as on SQS; only its bounded
	// stop is checked here.
	u := createQueue(t, qc, "slow-q", nil)
	if _, err := c.CreateEventSourceMapping(ctx, &lambda.CreateEventSourceMappingInput{FunctionName: aws.String("slow"), EventSourceArn: aws.String(queueAttrs(t, qc, u)["QueueArn"]), BatchSize: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("slow"), InvocationType: ltypes.InvocationTypeEvent, Payload: []byte(`{"name":"async"}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := qc.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &u, MessageBody: aws.String("queued")}); err != nil {
		t.Fatal(err)
	}
	syncDone := make(chan error, 1)
	go func() {
		_, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("slow"), Payload: []byte(`{"name":"sync"}`)})
		syncDone <- err
	}()
	started := func(name string) int {
		n := 0
		for _, m := range sink.snapshot() {
			if m["start"] == name {
				n++
			}
		}
		return n
	}
	waitFor(t, 30*time.Second, "the three invocations to be running", func() bool {
		return started("async") == 1 && started("sync") == 1 && started("queued") == 1
	})
	cgroups := stratusCgroups(t, dir)
	if len(cgroups) == 0 {
		requireRoot(t)
		t.Fatal("no cgroup of the server found while instances run")
	}

	begin := time.Now()
	if err := s.stop(5 * time.Second); err != nil {
		t.Fatalf("stop with a 2 s drain timeout: %v (after %v)\n%s", err, time.Since(begin), s.out.String())
	}
	t.Logf("stopped %v after SIGTERM", time.Since(begin).Round(time.Millisecond))
	if err := <-syncDone; err == nil {
		t.Error("the synchronous invocation cut off by shutdown reported success")
	}
	if left := stratusCgroups(t, dir); len(left) != 0 {
		t.Errorf("cgroups left after a clean stop: %v", left)
	}

	first := s.out.String()
	defer func() {
		if t.Failed() {
			t.Logf("output before the restart:\n%s", first)
		}
	}()
	// After a restart the async event runs again, and finishes (the
	// function sleeps on an event's first run only).
	s.restart()

	waitFor(t, 60*time.Second, "the async event to be redelivered and finish", func() bool {
		for _, m := range sink.snapshot() {
			if m["done"] == "async" {
				return true
			}
		}
		return false
	})
	if u := s.usage(t, "slow"); u.Errors != 0 {
		t.Errorf("usage counts %d errors; the cut-off invocations are not function errors", u.Errors)
	}
}

// stratusCgroups lists the cgroup folders of the server whose data folder
// is dir (named for a hash of its instances folder).
func stratusCgroups(t *testing.T, dir string) []string {
	t.Helper()
	abs, err := filepath.Abs(filepath.Join(dir, "instances"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(abs))
	name := "stratus-" + hex.EncodeToString(sum[:6])
	var found []string
	_ = filepath.WalkDir("/sys/fs/cgroup", func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if d.Name() == name {
			found = append(found, p)
			return filepath.SkipDir
		}
		if strings.Count(strings.TrimPrefix(p, "/sys/fs/cgroup"), "/") > 6 {
			return filepath.SkipDir
		}
		return nil
	})
	return found
}

// TestPausedServer: a server stopped (SIGSTOP) past an invocation's
// deadline, while its function answered in time, reports the answer, not
// a timeout: the function's time counts, not the pause.
func TestPausedServer(t *testing.T) {
	sink := newJSONSink(t)
	s := startServer(t, "", "--host-network", "paused")
	c := s.lambda()
	createFunction(t, c, "paused", makeZip(t, map[string][]byte{"app.py": []byte(slowReporter)}),
		fnOpts{runtime: "python3.11", handler: "app.handler", timeout: 3, env: map[string]string{"SINK": sink.URL}})
	invoke(t, c, "paused", `{"name":"warm"}`)
	type result struct {
		out *lambda.InvokeOutput
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := c.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("paused"), Payload: []byte(`{"name":"p","sleep":0.5}`)})
		done <- result{out, err}
	}()
	waitFor(t, 10*time.Second, "the invocation to start", func() bool {
		for _, m := range sink.snapshot() {
			if m["start"] == "p" {
				return true
			}
		}
		return false
	})
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// The pause itself is the fault: longer than the function's timeout.
	time.Sleep(4 * time.Second)
	if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.out.FunctionError != nil || !strings.Contains(string(r.out.Payload), `"ok": "p"`) {
		t.Fatalf("after a pause: %v %s", r.err, r.out.Payload)
	}
}

// TestDescriptorLimitNamedAtStart: a server whose hard limit on open
// files is below the 1,024 every instance gets says so and does not start,
// rather than failing every invocation.
func TestDescriptorLimitNamedAtStart(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Fatal("setpriv (util-linux) is needed to drop CAP_SYS_RESOURCE")
	}
	dir := t.TempDir()
	// Without CAP_SYS_RESOURCE even root cannot raise its hard limit again.
	cmd := exec.Command("setpriv", "--bounding-set=-sys_resource", "--inh-caps=-sys_resource", "prlimit", "--nofile=512:512", stratusBin,
		"server", "--listen", freeAddr(t), "--http-listen", freeAddr(t), "--data-dir", dir)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "hard limit on open files is 512") {
		t.Fatalf("start with 512 open files: %v\n%s", err, out)
	}
	if left := stratusCgroups(t, dir); len(left) != 0 {
		t.Errorf("cgroups left after a failed start: %v", left)
	}
}
