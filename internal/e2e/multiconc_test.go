package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// invokeAll runs the payloads at once and returns each answer, in order.
func invokeAll(t *testing.T, c *lambda.Client, name string, payloads []string) []*lambda.InvokeOutput {
	t.Helper()
	out := make([]*lambda.InvokeOutput, len(payloads))
	var wg sync.WaitGroup
	for i, p := range payloads {
		wg.Go(func() {
			o, err := c.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String(name), Payload: []byte(p)})
			if err != nil {
				t.Errorf("invoke %d: %v", i, err)
				return
			}
			out[i] = o
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return out
}

func repeat(p string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = strings.ReplaceAll(p, "#", fmt.Sprint(i))
	}
	return out
}

// TestMultiConcurrency: functions configured as Lambda Managed Instances
// define them run several invocations in one execution environment.
func TestMultiConcurrency(t *testing.T) {
	s := startServer(t, "")
	c := s.lambda()
	ctx := context.Background()

	t.Run("go", func(t *testing.T) {
		createFunction(t, c, "multi-go", goZip(t), fnOpts{timeout: 1, perEnv: 8})
		cfg, err := c.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("multi-go")})
		if err != nil {
			t.Fatal(err)
		}
		mi := cfg.CapacityProviderConfig.LambdaManagedInstancesCapacityProviderConfig
		if aws.ToString(mi.CapacityProviderArn) != capacityProvider || aws.ToInt32(mi.PerExecutionEnvironmentMaxConcurrency) != 8 {
			t.Fatalf("CapacityProviderConfig = %+v", mi)
		}
		if cfg.LoggingConfig.LogFormat != types.LogFormatJson {
			t.Errorf("LogFormat = %s, want JSON for a multi-concurrency function", cfg.LoggingConfig.LogFormat)
		}
		// Eight at once fill one environment; each answer is its own.
		outs := invokeAll(t, c, "multi-go", repeat(`{"name":"n#","sleepMs":300,"env":"AWS_LAMBDA_MAX_CONCURRENCY"}`, 8))
		instances := map[string]bool{}
		for i, o := range outs {
			r := decodeReply(t, o.Payload)
			if o.FunctionError != nil || r.Message != fmt.Sprintf("hello, n%d", i) {
				t.Fatalf("answer %d: %s", i, o.Payload)
			}
			if r.EnvValue != "8" {
				t.Errorf("AWS_LAMBDA_MAX_CONCURRENCY = %q", r.EnvValue)
			}
			instances[r.Instance] = true
		}
		if len(instances) != 1 {
			t.Fatalf("8 invocations of a function taking 8 per environment ran in %d environments", len(instances))
		}
		// Twelve need a second environment, and no more.
		outs = invokeAll(t, c, "multi-go", repeat(`{"name":"m#","sleepMs":300}`, 12))
		for _, o := range outs {
			instances[decodeReply(t, o.Payload).Instance] = true
		}
		if len(instances) != 2 {
			t.Fatalf("12 invocations at 8 per environment ran in %d environments", len(instances))
		}

		// A timeout fails that invocation only; the others on the same
		// environment finish, and the environment is then replaced.
		outs = invokeAll(t, c, "multi-go", []string{`{"sleepMs":3000}`, `{"name":"a","sleepMs":200}`, `{"name":"b","sleepMs":200}`})
		if outs[0].FunctionError == nil || !strings.Contains(string(outs[0].Payload), "Sandbox.Timedout") {
			t.Fatalf("the slow invocation: %s", outs[0].Payload)
		}
		for _, o := range outs[1:] {
			if o.FunctionError != nil {
				t.Fatalf("an invocation beside a timed-out one failed: %s", o.Payload)
			}
		}

		// A crash fails what that environment had in flight, nothing else.
		waitFor(t, 10*time.Second, "idle environments", func() bool { return len(s.instances()) <= 2 })
		outs = invokeAll(t, c, "multi-go", []string{`{"sleepMs":100,"fail":"exit"}`, `{"sleepMs":600}`, `{"sleepMs":600}`})
		failed := 0
		for _, o := range outs {
			if o.FunctionError != nil {
				if !strings.Contains(string(o.Payload), "Runtime.ExitError") {
					t.Errorf("failed with %s", o.Payload)
				}
				failed++
			}
		}
		if failed == 0 {
			t.Fatal("a crashed environment's invocations did not fail")
		}
		if o := invoke(t, c, "multi-go", `{"name":"after"}`); o.FunctionError != nil {
			t.Fatalf("after a crash: %s", o.Payload)
		}

		// Billing: requests, and the environments' lifetime instead of
		// each invocation's duration.
		if _, err := c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("multi-go"), Description: aws.String("retire")}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "environments to go", func() bool { return len(s.instances()) == 0 })
		waitFor(t, 10*time.Second, "usage", func() bool {
			u := s.usage(t, "multi-go")
			return u.Requests == 27 && u.EnvironmentGBSeconds > 0
		})
		if u := s.usage(t, "multi-go"); u.GBSeconds != 0 {
			t.Errorf("invocations billed %g GB-s on top of their environments", u.GBSeconds)
		}
		// No provisioned concurrency for such functions, as on Lambda.
		_, err = c.PutProvisionedConcurrencyConfig(ctx, &lambda.PutProvisionedConcurrencyConfigInput{FunctionName: aws.String("multi-go"), Qualifier: aws.String("$LATEST"), ProvisionedConcurrentExecutions: aws.Int32(1)})
		if errorCode(err) == "" {
			t.Errorf("provisioned concurrency on a multi-concurrency function: %v", err)
		}
	})

	t.Run("bad configuration", func(t *testing.T) {
		mi := func(arn string, n int32) *types.CapacityProviderConfig {
			return &types.CapacityProviderConfig{LambdaManagedInstancesCapacityProviderConfig: &types.LambdaManagedInstancesCapacityProviderConfig{
				CapacityProviderArn: aws.String(arn), PerExecutionEnvironmentMaxConcurrency: aws.Int32(n)}}
		}
		for name, tc := range map[string]struct {
			cp      *types.CapacityProviderConfig
			logging *types.LoggingConfig
		}{
			"concurrency 0":    {cp: mi(capacityProvider, 0)},
			"concurrency 5000": {cp: mi(capacityProvider, 5000)},
			"not an ARN":       {cp: mi("provider", 4)},
			"Text logs":        {cp: mi(capacityProvider, 4), logging: &types.LoggingConfig{LogFormat: types.LogFormatText}},
		} {
			_, err := c.CreateFunction(ctx, &lambda.CreateFunctionInput{
				FunctionName: aws.String("multi-bad"), Runtime: types.RuntimeProvidedal2023, Handler: aws.String("bootstrap"),
				Role: aws.String("arn:aws:iam::000000000000:role/test"), Code: &types.FunctionCode{ZipFile: goZip(t)},
				CapacityProviderConfig: tc.cp, LoggingConfig: tc.logging,
			})
			if errorCode(err) != "InvalidParameterValueException" || httpStatus(err) != 400 {
				t.Errorf("%s: %v, want InvalidParameterValueException (400)", name, err)
			}
		}
	})

	t.Run("python", func(t *testing.T) {
		// One worker process per concurrent invocation, each with its own
		// init; /tmp is the environment's.
		src := `import os, time, logging
INIT_PID = os.getpid()
log = logging.getLogger()
def handler(event, context):
    if event.get("write"):
        with open("/tmp/shared.txt", "w") as f:
            f.write(event["write"])
    time.sleep(event.get("sleepMs", 0) / 1000)
    log.info("working on %s", event.get("tag"))
    tmp = open("/tmp/shared.txt").read() if os.path.exists("/tmp/shared.txt") else None
    return {"pid": os.getpid(), "initPid": INIT_PID, "requestId": context.aws_request_id, "tag": event.get("tag"), "tmp": tmp}
`
		createFunction(t, c, "multi-py", makeZip(t, map[string][]byte{"app.py": []byte(src)}), fnOpts{runtime: "python3.11", handler: "app.handler", perEnv: 4})
		outs := invokeAll(t, c, "multi-py", repeat(`{"tag":"t#","sleepMs":400}`, 4))
		pids := map[int]bool{}
		for i, o := range outs {
			var r struct {
				Pid, InitPid   int
				RequestID, Tag string
			}
			if err := json.Unmarshal(o.Payload, &r); err != nil || o.FunctionError != nil || r.Tag != fmt.Sprintf("t%d", i) {
				t.Fatalf("answer %d: %s", i, o.Payload)
			}
			if r.Pid != r.InitPid {
				t.Errorf("worker %d ran init in another process (%d)", r.Pid, r.InitPid)
			}
			pids[r.Pid] = true
		}
		if len(pids) != 4 || len(s.instances()) != 1 {
			t.Fatalf("4 concurrent invocations: %d worker processes, %d environments", len(pids), len(s.instances()))
		}
		invoke(t, c, "multi-py", `{"write":"from one worker"}`)
		outs = invokeAll(t, c, "multi-py", repeat(`{"sleepMs":200}`, 4))
		for _, o := range outs {
			if !strings.Contains(string(o.Payload), "from one worker") {
				t.Fatalf("/tmp not shared by the workers: %s", o.Payload)
			}
		}
		// Each log line names its invocation.
		waitFor(t, 10*time.Second, "the workers' log lines", func() bool {
			return strings.Count(logsOf(t, s, "multi-py"), `"message": "working on t`) == 4
		})
		for _, line := range strings.Split(logsOf(t, s, "multi-py"), "\n") {
			if strings.Contains(line, "working on t") && !strings.Contains(line, `"requestId": "`) {
				t.Errorf("a log line without its request id: %s", line)
			}
		}
		if _, err := c.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("multi-py")}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "the environment to go", func() bool { return len(s.instances()) == 0 })
	})

	t.Run("node", func(t *testing.T) {
		src := `import { threadId } from "node:worker_threads";
const initThread = threadId;
export const handler = async (event, context) => {
  await new Promise((r) => setTimeout(r, event.sleepMs || 0));
  console.log("working on", event.tag);
  return { pid: process.pid, thread: threadId, initThread, requestId: context.awsRequestId, tag: event.tag };
};
`
		createFunction(t, c, "multi-node", makeZip(t, map[string][]byte{"index.mjs": []byte(src)}), fnOpts{runtime: "nodejs20.x", handler: "index.handler", perEnv: 8})
		outs := invokeAll(t, c, "multi-node", repeat(`{"tag":"t#","sleepMs":400}`, 8))
		pids := map[int]bool{}
		for i, o := range outs {
			var r struct {
				Pid, Thread, InitThread int
				RequestID, Tag          string
			}
			if err := json.Unmarshal(o.Payload, &r); err != nil || o.FunctionError != nil || r.Tag != fmt.Sprintf("t%d", i) {
				t.Fatalf("answer %d: %s", i, o.Payload)
			}
			if r.Thread == 0 || r.Thread != r.InitThread {
				t.Errorf("invocation on thread %d (init on %d): not a worker thread's", r.Thread, r.InitThread)
			}
			pids[r.Pid] = true
		}
		if len(pids) != 1 || len(s.instances()) != 1 {
			t.Fatalf("8 concurrent invocations: %d processes, %d environments", len(pids), len(s.instances()))
		}
		waitFor(t, 10*time.Second, "the log lines", func() bool {
			return strings.Count(logsOf(t, s, "multi-node"), `"message":"working on t`) == 8
		})
	})
}
