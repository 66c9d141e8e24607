package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	ltypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// fill writes zeros to path until the file system under it has at most
// leave bytes free.
func fill(t *testing.T, path string, leave int64) {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(path), &st); err != nil {
		t.Fatal(err)
	}
	want := int64(st.Bavail)*int64(st.Bsize) - leave
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for want > 0 {
		n := min(want, int64(len(chunk)))
		if _, err := f.Write(chunk[:n]); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return
			}
			t.Fatal(err)
		}
		want -= n
	}
}

func health(t *testing.T, s *server) (int, string) {
	t.Helper()
	resp, err := http.Get(s.Endpoint + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestDiskFull: the disk under the data folder fills up, first all at
// once (writes are refused before the store's own writes fail), then
// during a batch of large messages (JetStream's own write fails and it
// disables itself). Writes are refused at once with 503 and /healthz says
// why; once space returns the same queue and async invocations work again
// without a restart, and every message accepted is there exactly once.
func TestDiskFull(t *testing.T) {
	requireRoot(t)
	disk := filepath.Join(t.TempDir(), "disk")
	if err := os.MkdirAll(disk, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", disk, "tmpfs", 0, "size=160m"); err != nil {
		t.Fatalf("mount a small file system: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(disk, syscall.MNT_DETACH) })
	s := startServer(t, filepath.Join(disk, "data"))
	if !strings.Contains(s.out.String(), "store sized from the disk") {
		t.Fatalf("the store's sizes are not named at start:\n%s", s.out.String())
	}
	creds := s.creds()
	lc := lambda.New(lambda.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.Endpoint), RetryMaxAttempts: 1, Credentials: creds})
	qc := sqs.New(sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.Endpoint), RetryMaxAttempts: 1, Credentials: creds})
	ctx := context.Background()
	createFunction(t, lc, "full-fn", goZip(t), fnOpts{})
	u := createQueue(t, qc, "full-q", nil)
	accepted := map[string]bool{}
	send := func(body string) error {
		_, err := qc.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &u, MessageBody: aws.String(body)})
		if err == nil {
			accepted[body] = true
		}
		return err
	}
	asyncInvoke := func() error {
		_, err := lc.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("full-fn"), InvocationType: ltypes.InvocationTypeEvent, Payload: []byte(`{}`)})
		return err
	}
	for i := range 5 {
		if err := send(fmt.Sprintf("before-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	filler := filepath.Join(disk, "filler")

	// All at once.
	fill(t, filler, 0)
	waitFor(t, 10*time.Second, "/healthz to report the full disk", func() bool {
		code, body := health(t, s)
		return code == 503 && strings.Contains(body, "disk")
	})
	start := time.Now()
	if err := send("refused"); httpStatus(err) != 503 || errorCode(err) != "ServiceUnavailable" || !strings.Contains(err.Error(), "disk") {
		t.Fatalf("SendMessage on a full disk: %v", err)
	}
	if err := asyncInvoke(); httpStatus(err) != 503 || errorCode(err) != "ServiceException" {
		t.Fatalf("async invoke on a full disk: %v", err)
	}
	if _, err := qc.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("full-new")}); httpStatus(err) != 503 {
		t.Fatalf("CreateQueue on a full disk: %v", err)
	}
	t.Logf("three refusals on a full disk took %v", time.Since(start).Round(time.Millisecond))
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "/healthz to recover", func() bool { code, _ := health(t, s); return code == 200 })
	if err := send("after-space"); err != nil {
		t.Fatal(err)
	}

	// During a write: above the reserve, a batch of large messages runs
	// the file system out under the store itself.
	fill(t, filler, 17<<20)
	big := strings.Repeat("x", 250<<10)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			body := fmt.Sprintf("big-%d-%s", i, big)
			_, err := qc.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &u, MessageBody: aws.String(body)})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				accepted[body] = true
			case httpStatus(err) != 503:
				t.Errorf("large message on a filling disk: %v", err)
			}
		})
	}
	wg.Wait()
	waitFor(t, 10*time.Second, "/healthz to report the store unable to write", func() bool { code, _ := health(t, s); return code == 503 })
	_, why := health(t, s)
	t.Logf("while full: %s", strings.TrimSpace(why))
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "/healthz to recover again", func() bool { code, _ := health(t, s); return code == 200 })
	waitFor(t, 20*time.Second, "the same queue to take messages again", func() bool { return send("after-recovery") == nil })
	before := s.usage(t, "full-fn").Requests
	waitFor(t, 20*time.Second, "async invocations to be accepted again", func() bool { return asyncInvoke() == nil })
	waitFor(t, 30*time.Second, "the async invocation to run", func() bool { return s.usage(t, "full-fn").Requests > before })

	// Every accepted message is there, once.
	seen := map[string]int{}
	waitFor(t, 30*time.Second, "every accepted message received", func() bool {
		out, err := qc.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &u, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 600})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			seen[*m.Body]++
		}
		for b := range accepted {
			if seen[b] == 0 {
				return false
			}
		}
		return true
	})
	for b, n := range seen {
		if n > 1 {
			t.Errorf("%.20s... received %d times", b, n)
		}
		if !accepted[b] && !bytes.HasPrefix([]byte(b), []byte("big-")) {
			t.Errorf("%.20s... received but never accepted", b)
		}
	}
	t.Logf("%d messages accepted, all received", len(accepted))
}
