package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// TestS3ChaosKill9: uploads go on while the server is killed with SIGKILL
// and restarted. Every upload that was answered 200 is intact after, and
// the function its notification starts ran for it at least once, even
// when the server died between the answer and the run.
func TestS3ChaosKill9(t *testing.T) {
	const kills = 3
	// Retries come soon: the test is of what survives, not of waiting.
	s := startServer(t, "", "--async-retry-delay", "2s")
	ctx := context.Background()
	c := s.s3(t)
	lc := s.lambda()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("chaos")}); err != nil {
		t.Fatal(err)
	}
	createFunction(t, lc, "marker", makeZip(t, map[string][]byte{"app.py": []byte(markerPy)}), fnOpts{runtime: "python3.11", handler: "app.handler", timeout: 10})
	if _, err := lc.AddPermission(ctx, &lambda.AddPermissionInput{FunctionName: aws.String("marker"), StatementId: aws.String("s3"),
		Action: aws.String("lambda:InvokeFunction"), Principal: aws.String("s3.amazonaws.com")}); err != nil {
		t.Fatal(err)
	}
	cfg := `<NotificationConfiguration><CloudFunctionConfiguration><CloudFunction>arn:aws:lambda:us-east-1:000000000000:function:marker</CloudFunction>` +
		`<Event>s3:ObjectCreated:*</Event><Filter><S3Key><FilterRule><Name>prefix</Name><Value>in/</Value></FilterRule></S3Key></Filter></CloudFunctionConfiguration></NotificationConfiguration>`
	if code := putNotification(t, s, "chaos", cfg); code != 200 {
		t.Fatalf("notification configuration: %d", code)
	}

	var mu sync.Mutex
	acked := map[string][32]byte{}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				key := fmt.Sprintf("in/%d-%d", g, i)
				body := randomBytes(1024 + rand.IntN(1<<20))
				mu.Lock()
				cl := s.s3(t) // a client of the server running now
				mu.Unlock()
				if _, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("chaos"), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
					time.Sleep(20 * time.Millisecond) // the server is down: try the next key soon
					continue
				}
				mu.Lock()
				acked[key] = sha256.Sum256(body)
				mu.Unlock()
			}
		})
	}
	for k := range kills {
		waitFor(t, 30*time.Second, "uploads", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(acked) >= 10*(k+1)
		})
		time.Sleep(time.Duration(200+rand.IntN(400)) * time.Millisecond) // the kill lands mid-traffic
		mu.Lock()
		s.kill()
		s.restart()
		mu.Unlock()
	}
	stop.Store(true)
	wg.Wait()
	c = s.s3(t)
	mu.Lock()
	n := len(acked)
	mu.Unlock()
	if n == 0 {
		t.Fatal("no upload was acknowledged")
	}
	for key, want := range acked {
		o, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("chaos"), Key: aws.String(key)})
		if err != nil {
			t.Errorf("acknowledged %s lost: %v", key, err)
			continue
		}
		got, _ := io.ReadAll(o.Body)
		o.Body.Close()
		if sha256.Sum256(got) != want {
			t.Errorf("acknowledged %s changed", key)
		}
	}
	missing := func() []string {
		var out []string
		for key := range acked {
			if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("chaos"), Key: aws.String("ran/" + strings.TrimPrefix(key, "in/"))}); err != nil {
				out = append(out, key)
			}
		}
		return out
	}
	deadline := time.Now().Add(120 * time.Second)
	for m := missing(); len(m) > 0; m = missing() {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged uploads never ran their function, such as %v", len(m), n, m[:min(len(m), 5)])
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("s3 chaos: %d kills; %d uploads acknowledged, all intact, each one's function ran", kills, n)
}

const markerPy = `
import boto3
s3 = boto3.client("s3")

def handler(event, context):
    for rec in event["Records"]:
        key = rec["s3"]["object"]["key"]
        s3.put_object(Bucket=rec["s3"]["bucket"]["name"], Key="ran/" + key.split("/", 1)[1], Body=b"ran")
`
