package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

type reply struct {
	Message     string `json:"message"`
	RequestID   string `json:"requestId"`
	Function    string `json:"function"`
	Memory      any    `json:"memoryLimitInMB"`
	RemainingMs int64  `json:"remainingMs"`
	Pid         int    `json:"pid"`
	Instance    string `json:"instance"`
	EnvValue    string `json:"envValue"`
}

func decodeReply(t testing.TB, b []byte) reply {
	t.Helper()
	var r reply
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("bad reply %q: %v", b, err)
	}
	return r
}

func TestInvoke(t *testing.T) {
	s := startServer(t, "")
	c := s.lambda()
	ctx := context.Background()
	createFunction(t, c, "inv", goZip(t), fnOpts{env: map[string]string{"COLOR": "blue"}})

	t.Run("request response", func(t *testing.T) {
		out, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("inv"), Payload: []byte(`{"name":"stratus","env":"COLOR"}`), LogType: types.LogTypeTail})
		if err != nil {
			t.Fatal(err)
		}
		r := decodeReply(t, out.Payload)
		if out.StatusCode != 200 || r.Message != "hello, stratus" || r.Function != "inv" || r.EnvValue != "blue" {
			t.Errorf("status %d reply %+v", out.StatusCode, r)
		}
		if r.RemainingMs <= 0 || r.RemainingMs > 3000 {
			t.Errorf("deadline not passed to the function: remaining %d ms", r.RemainingMs)
		}
		if aws.ToString(out.ExecutedVersion) != "$LATEST" || out.FunctionError != nil {
			t.Errorf("executed %q function error %v", aws.ToString(out.ExecutedVersion), out.FunctionError)
		}
		tail, err := base64.StdEncoding.DecodeString(aws.ToString(out.LogResult))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"START RequestId: " + r.RequestID + " Version: $LATEST", "END RequestId: " + r.RequestID, "REPORT RequestId: " + r.RequestID, "Billed Duration:", "Max Memory Used:", "Init Duration:"} {
			if !strings.Contains(string(tail), want) {
				t.Errorf("log tail lacks %q:\n%s", want, tail)
			}
		}
	})

	t.Run("function output in tail, at most 4 KB", func(t *testing.T) {
		out, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("inv"), Payload: []byte(`{"print":"a line from the function"}`), LogType: types.LogTypeTail})
		if err != nil {
			t.Fatal(err)
		}
		tail, _ := base64.StdEncoding.DecodeString(aws.ToString(out.LogResult))
		if !strings.Contains(string(tail), "a line from the function") || strings.Contains(string(tail), "Init Duration") {
			t.Errorf("warm tail:\n%s", tail)
		}
		long := strings.Repeat("y", 6000)
		out, err = c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("inv"), Payload: []byte(`{"print":"` + long + `"}`), LogType: types.LogTypeTail})
		if err != nil {
			t.Fatal(err)
		}
		tail, _ = base64.StdEncoding.DecodeString(aws.ToString(out.LogResult))
		if len(tail) > 4096 || !strings.Contains(string(tail), "REPORT RequestId") {
			t.Errorf("tail of %d bytes, ends %q", len(tail), tail[max(0, len(tail)-80):])
		}
	})

	t.Run("dry run", func(t *testing.T) {
		out, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("inv"), InvocationType: types.InvocationTypeDryRun})
		if err != nil || out.StatusCode != 204 {
			t.Fatalf("dry run: %v status %d", err, out.StatusCode)
		}
	})

	t.Run("function error", func(t *testing.T) {
		out := invoke(t, c, "inv", `{"fail":"error"}`)
		if aws.ToString(out.FunctionError) != "Unhandled" || out.StatusCode != 200 {
			t.Fatalf("function error %v status %d", out.FunctionError, out.StatusCode)
		}
		var doc struct{ ErrorMessage, ErrorType string }
		_ = json.Unmarshal(out.Payload, &doc)
		if doc.ErrorMessage != "failed on purpose" || doc.ErrorType == "" {
			t.Errorf("error document %s", out.Payload)
		}
	})

	t.Run("payload over 6 MB", func(t *testing.T) {
		big := `{"x":"` + strings.Repeat("a", 6*1024*1024) + `"}`
		_, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("inv"), Payload: []byte(big)})
		if errorCode(err) != "RequestTooLargeException" || httpStatus(err) != 413 {
			t.Fatalf("got %v", err)
		}
	})

	t.Run("payload just under 6 MB", func(t *testing.T) {
		pad := 6*1024*1024 - len(`{"echo":""}`)
		out := invoke(t, c, "inv", `{"echo":"`+strings.Repeat("b", pad)+`"}`)
		// The echo makes the answer larger than 6 MB: a function error, not a crash.
		if aws.ToString(out.FunctionError) != "Unhandled" || !bytes.Contains(out.Payload, []byte("Function.ResponseSizeTooLarge")) {
			t.Fatalf("oversized response: %v %.200s", out.FunctionError, out.Payload)
		}
		// And the next request is served.
		if r := decodeReply(t, invoke(t, c, "inv", `{}`).Payload); r.Message != "hello, world" {
			t.Errorf("after oversized response: %+v", r)
		}
	})

	t.Run("response over 6 MB", func(t *testing.T) {
		out := invoke(t, c, "inv", `{"big":7000000}`)
		if aws.ToString(out.FunctionError) != "Unhandled" || !bytes.Contains(out.Payload, []byte("Function.ResponseSizeTooLarge")) {
			t.Fatalf("got %v %.200s", out.FunctionError, out.Payload)
		}
		invoke(t, c, "inv", `{}`)
	})

	t.Run("not json", func(t *testing.T) {
		_, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("inv"), Payload: []byte(`not json`)})
		if errorCode(err) != "InvalidRequestContentException" || httpStatus(err) != 400 {
			t.Fatalf("got %v", err)
		}
	})

	t.Run("qualifier", func(t *testing.T) {
		if _, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("inv"), Qualifier: aws.String("$LATEST")}); err != nil {
			t.Errorf("$LATEST: %v", err)
		}
		if _, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("inv:$LATEST")}); err != nil {
			t.Errorf("name:$LATEST: %v", err)
		}
		_, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("inv"), Qualifier: aws.String("7")})
		if errorCode(err) != "ResourceNotFoundException" {
			t.Errorf("unknown version: %v", err)
		}
	})

	t.Run("client context", func(t *testing.T) {
		cc := base64.StdEncoding.EncodeToString([]byte(`{"custom":{"k":"v"}}`))
		if _, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("inv"), ClientContext: aws.String(cc)}); err != nil {
			t.Errorf("client context: %v", err)
		}
	})

	t.Run("unknown invocation type", func(t *testing.T) {
		req, _ := http.NewRequest("POST", s.Endpoint+"/2015-03-31/functions/inv/invocations", strings.NewReader(`{}`))
		req.Header.Set("X-Amz-Invocation-Type", "Sometimes")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 || resp.Header.Get("X-Amzn-ErrorType") != "InvalidParameterValueException" {
			t.Errorf("status %d type %q", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"))
		}
	})
}

func TestTimeoutAndCrash(t *testing.T) {
	s := startServer(t, "")
	c := s.lambda()
	createFunction(t, c, "slow", goZip(t), fnOpts{timeout: 1})

	first := decodeReply(t, invoke(t, c, "slow", `{}`).Payload)
	before := s.instances()
	if len(before) != 1 {
		t.Fatalf("instances %v", before)
	}
	start := time.Now()
	out := invoke(t, c, "slow", `{"sleepMs":5000}`)
	took := time.Since(start)
	if aws.ToString(out.FunctionError) != "Unhandled" || !bytes.Contains(out.Payload, []byte("Task timed out after 1.0")) || !bytes.Contains(out.Payload, []byte("Sandbox.Timedout")) {
		t.Fatalf("timeout answer: %s", out.Payload)
	}
	if took > 2500*time.Millisecond {
		t.Errorf("timeout answered after %v, want about 1s", took)
	}
	// The timed-out instance is destroyed.
	waitFor(t, 5*time.Second, "timed-out instance to be destroyed", func() bool { return !alive(before[0]) })
	second := decodeReply(t, invoke(t, c, "slow", `{}`).Payload)
	if second.Instance == first.Instance {
		t.Error("instance reused after timeout")
	}

	for _, mode := range []string{"panic", "exit"} {
		out := invoke(t, c, "slow", `{"fail":"`+mode+`"}`)
		if aws.ToString(out.FunctionError) != "Unhandled" {
			t.Errorf("%s: no function error: %s", mode, out.Payload)
		}
		if mode == "exit" && !bytes.Contains(out.Payload, []byte("Runtime.ExitError")) {
			t.Errorf("exit: %s", out.Payload)
		}
		// The crashed instance is replaced transparently.
		if r := decodeReply(t, invoke(t, c, "slow", `{}`).Payload); r.Message != "hello, world" {
			t.Errorf("after %s: %+v", mode, r)
		}
	}
}

func TestScaling(t *testing.T) {
	s := startServer(t, "")
	c := s.lambda()
	createFunction(t, c, "scale", goZip(t), fnOpts{timeout: 10})

	// Warm reuse: sequential requests land on one instance.
	a := decodeReply(t, invoke(t, c, "scale", `{}`).Payload)
	b := decodeReply(t, invoke(t, c, "scale", `{}`).Payload)
	if a.Instance != b.Instance {
		t.Errorf("sequential invocations used instances %s and %s", a.Instance, b.Instance)
	}

	// Twenty concurrent one-second invocations: twenty instances, about one second.
	const n = 20
	var wg sync.WaitGroup
	ids := make([]string, n)
	errs := make([]error, n)
	start := time.Now()
	for i := range n {
		wg.Go(func() {
			out, err := c.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("scale"), Payload: []byte(`{"sleepMs":1000}`)})
			if err != nil {
				errs[i] = err
				return
			}
			if out.FunctionError != nil {
				errs[i] = fmt.Errorf("function error: %s", out.Payload)
				return
			}
			ids[i] = decodeReply(t, out.Payload).Instance
		})
	}
	wg.Wait()
	took := time.Since(start)
	seen := map[string]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("invocation %d: %v", i, errs[i])
		}
		seen[ids[i]] = true
	}
	if len(seen) != n {
		t.Errorf("%d concurrent invocations ran on %d instances", n, len(seen))
	}
	if took > 2500*time.Millisecond {
		t.Errorf("%d concurrent 1 s invocations took %v", n, took)
	}
	t.Logf("%d concurrent 1 s invocations took %v on %d instances", n, took, len(seen))
	if got := len(s.instances()); got != n {
		t.Errorf("%d instance processes alive, want %d kept warm", got, n)
	}
}

func TestIdleTimeout(t *testing.T) {
	s := startServer(t, "", "--idle-timeout", "1s")
	c := s.lambda()
	createFunction(t, c, "idle", goZip(t), fnOpts{})
	createFunction(t, c, "idle-long", goZip(t), fnOpts{tags: map[string]string{"stratus:idle-timeout": "1h"}})

	invoke(t, c, "idle-long", `{}`)
	long := s.instances()
	invoke(t, c, "idle", `{}`)
	both := s.instances()
	if len(long) != 1 || len(both) != 2 {
		t.Fatalf("instances %v then %v", long, both)
	}
	waitFor(t, 5*time.Second, "idle instance to be reaped", func() bool { return len(s.instances()) == 1 })
	if got := s.instances(); len(got) != 1 || got[0] != long[0] {
		t.Errorf("instances left: %v, want only %d (per-function idle timeout of 1h)", got, long[0])
	}
	// A new request starts a new instance (cold).
	out, err := c.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("idle"), LogType: types.LogTypeTail})
	if err != nil {
		t.Fatal(err)
	}
	tail, _ := base64.StdEncoding.DecodeString(aws.ToString(out.LogResult))
	if !strings.Contains(string(tail), "Init Duration") {
		t.Errorf("invocation after reap was not a cold start:\n%s", tail)
	}
	metrics := getBody(t, s.Endpoint+"/metrics")
	for _, want := range []string{"stratus_instances 2", `stratus_cold_starts_total{function="idle"} 2`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
