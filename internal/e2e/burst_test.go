package e2e

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// TestProvisionedFailure: a version whose init fails reports FAILED with
// the reason.
func TestProvisionedFailure(t *testing.T) {
	s := startServer(t, "")
	c := s.lambda()
	ctx := context.Background()
	createFunction(t, c, "pc-broken", makeZip(t, map[string][]byte{"app.py": []byte("import not_a_module\n")}), fnOpts{runtime: "python3.11", handler: "app.handler"})
	if _, err := c.PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: aws.String("pc-broken")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutProvisionedConcurrencyConfig(ctx, &lambda.PutProvisionedConcurrencyConfigInput{FunctionName: aws.String("pc-broken"), Qualifier: aws.String("1"), ProvisionedConcurrentExecutions: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	var got *lambda.GetProvisionedConcurrencyConfigOutput
	waitFor(t, 15*time.Second, "FAILED status", func() bool {
		var err error
		got, err = c.GetProvisionedConcurrencyConfig(ctx, &lambda.GetProvisionedConcurrencyConfigInput{FunctionName: aws.String("pc-broken"), Qualifier: aws.String("1")})
		return err == nil && got.Status == types.ProvisionedConcurrencyStatusEnumFailed
	})
	if !strings.Contains(aws.ToString(got.StatusReason), "not_a_module") {
		t.Errorf("reason %q", aws.ToString(got.StatusReason))
	}
	// The other start fails the same way; neither leaves a process.
	waitFor(t, 15*time.Second, "no instance left by failed starts", func() bool { return len(s.instances()) == 0 })
}

// TestBurstNoOvershootNoLeak: 200 concurrent invocations from zero are all
// served, on no more instances than requests, and all are reaped after.
func TestBurstNoOvershootNoLeak(t *testing.T) {
	s := startServer(t, "", "--idle-timeout", "2s")
	c := s.lambda()
	createFunction(t, c, "burst", goZip(t), fnOpts{timeout: 30})
	const n = 200
	var wg sync.WaitGroup
	var mu sync.Mutex
	ids := map[string]bool{}
	failed := 0
	peak := 0
	stop := make(chan struct{})
	var watch sync.WaitGroup
	watch.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				if k := len(s.instances()); k > peak {
					mu.Lock()
					peak = k
					mu.Unlock()
				}
			}
		}
	})
	for range n {
		wg.Go(func() {
			out, err := c.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("burst"), Payload: []byte(`{"sleepMs":1000}`)})
			mu.Lock()
			defer mu.Unlock()
			if err != nil || out.FunctionError != nil {
				failed++
				return
			}
			ids[decodeReply(t, out.Payload).Instance] = true
		})
	}
	wg.Wait()
	close(stop)
	watch.Wait()
	if failed > 0 {
		t.Errorf("%d of %d failed", failed, n)
	}
	if len(ids) > n || peak > n {
		t.Errorf("overshoot: %d instances served, peak %d, for %d requests", len(ids), peak, n)
	}
	t.Logf("%d requests on %d instances (peak %d)", n, len(ids), peak)
	waitFor(t, 20*time.Second, "every instance reaped", func() bool { return len(s.instances()) == 0 && len(sandboxProcs()) == 0 })
}
