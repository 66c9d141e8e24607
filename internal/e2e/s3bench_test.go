package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

var (
	fileOnce sync.Once
	fileBin  string
	fileErr  error
)

// startFileServer runs the S3 benchmark's baseline and returns its URL.
func startFileServer(b *testing.B) string {
	fileOnce.Do(func() {
		fileBin = filepath.Join(binDir, "fileserver")
		fileErr = goBuild(fileBin, "./internal/e2e/fileserver")
	})
	if fileErr != nil {
		b.Fatal(fileErr)
	}
	addr := freeAddr(b)
	cmd := exec.Command(fileBin, addr, b.TempDir())
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	url := "http://" + addr
	waitFor(b, 10*time.Second, "file server", func() bool {
		resp, err := plainClient.Get(url + "/none")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	return url
}

// s3Put stores body at url: signed for S3 (the payload unsigned, as SDKs
// send it over TLS) when creds is set, plain otherwise.
func s3Put(b *testing.B, c *http.Client, url string, body []byte, creds *aws.Credentials) {
	req, _ := http.NewRequest(http.MethodPut, url, bytes.NewReader(body))
	if creds != nil {
		req.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
		signS3(b, req, *creds, "UNSIGNED-PAYLOAD", time.Now())
	}
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Fatalf("PUT %s: %d", url, resp.StatusCode)
	}
}

func s3Get(b *testing.B, c *http.Client, url string, size int, creds *aws.Credentials) {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if creds != nil {
		req.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
		signS3(b, req, *creds, "UNSIGNED-PAYLOAD", time.Now())
	}
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || n != int64(size) {
		b.Fatalf("GET %s: %d, %d bytes", url, resp.StatusCode, n)
	}
}

// BenchmarkS3: PUT and GET throughput of 1 MB and 100 MB objects against
// a plain Go file server that syncs each file before answering, in the
// same run (budget: at least 0.5 of it), and the time from an upload's
// start to the start of the function it triggers (p50, p99).
func BenchmarkS3(b *testing.B) {
	base := startFileServer(b)
	s := startServer(b, "", "--host-network", "started")
	ctx := context.Background()
	if _, err := s.s3(b).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bench")}); err != nil {
		b.Fatal(err)
	}
	creds, err := s.creds().Retrieve(ctx)
	if err != nil {
		b.Fatal(err)
	}
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	for _, size := range []int{1 << 20, 100 << 20} {
		body := randomBytes(size)
		n := 40
		if size > 1<<20 {
			n = 4
		}
		measure := func(put bool, url func(i int) string, cr *aws.Credentials) float64 {
			t0 := time.Now()
			for i := range n {
				if put {
					s3Put(b, c, url(i), body, cr)
				} else {
					s3Get(b, c, url(i), size, cr)
				}
			}
			return float64(n*size) / time.Since(t0).Seconds() / (1 << 20)
		}
		label := fmt.Sprintf("%dMB", size>>20)
		basePut := measure(true, func(i int) string { return fmt.Sprintf("%s/o%d", base, i) }, nil)
		put := measure(true, func(i int) string { return fmt.Sprintf("%s/bench/o%d", s.Endpoint, i) }, &creds)
		baseGet := measure(false, func(i int) string { return fmt.Sprintf("%s/o%d", base, i) }, nil)
		get := measure(false, func(i int) string { return fmt.Sprintf("%s/bench/o%d", s.Endpoint, i) }, &creds)
		b.ReportMetric(put, "put-"+label+"-MB/s")
		b.ReportMetric(put/basePut, "put-"+label+"-ratio")
		b.ReportMetric(get, "get-"+label+"-MB/s")
		b.ReportMetric(get/baseGet, "get-"+label+"-ratio")
	}

	// Upload to function start: the function, in the host's network,
	// reports when its handler began to the test's collector.
	sink := newJSONSink(b)
	lc := s.lambda()
	createFunction(b, lc, "started", makeZip(b, map[string][]byte{"app.py": []byte(startedPy)}),
		fnOpts{runtime: "python3.11", handler: "app.handler", timeout: 10, env: map[string]string{"SINK": sink.URL}})
	if _, err := lc.AddPermission(ctx, &lambda.AddPermissionInput{FunctionName: aws.String("started"), StatementId: aws.String("s3"),
		Action: aws.String("lambda:InvokeFunction"), Principal: aws.String("s3.amazonaws.com")}); err != nil {
		b.Fatal(err)
	}
	cfg := `<NotificationConfiguration><CloudFunctionConfiguration><CloudFunction>arn:aws:lambda:us-east-1:000000000000:function:started</CloudFunction>` +
		`<Event>s3:ObjectCreated:*</Event><Filter><S3Key><FilterRule><Name>prefix</Name><Value>in/</Value></FilterRule></S3Key></Filter></CloudFunctionConfiguration></NotificationConfiguration>`
	req, _ := http.NewRequest(http.MethodPut, s.Endpoint+"/bench?notification=", strings.NewReader(cfg))
	sum := sha256.Sum256([]byte(cfg))
	req.Header.Set("X-Amz-Content-Sha256", hex.EncodeToString(sum[:]))
	signS3(b, req, creds, hex.EncodeToString(sum[:]), time.Now())
	if resp, err := plainClient.Do(req); err != nil || resp.StatusCode != 200 {
		b.Fatalf("notification configuration: %v %v", resp, err)
	}
	const uploads = 40
	var lat []time.Duration
	for i := range uploads {
		key := fmt.Sprintf("in/%d", i)
		// From the upload's start: the event is delivered before the upload
		// is answered, so the function may start before the answer arrives.
		sent := time.Now()
		s3Put(b, c, s.Endpoint+"/bench/"+key, []byte("x"), &creds)
		var started float64
		waitFor(b, 20*time.Second, "the triggered function", func() bool {
			for _, m := range sink.snapshot() {
				if m["key"] == key {
					started = m["start"].(float64)
					return true
				}
			}
			return false
		})
		lat = append(lat, time.Unix(0, int64(started*1e9)).Sub(sent))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "trigger-p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "trigger-p99-ms")
}

const startedPy = `
import json, os, time, urllib.request

def handler(event, context):
    start = time.time()
    key = event["Records"][0]["s3"]["object"]["key"]
    urllib.request.urlopen(urllib.request.Request(os.environ["SINK"], data=json.dumps({"key": key, "start": start}).encode(), method="POST"), timeout=5)
`
