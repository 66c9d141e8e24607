package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	ltypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// jsPackage is a Node.js deployment package: the named files of
// testdata/js with the SDK's node_modules, as a function ships its
// dependencies on Lambda.
func jsPackage(t *testing.T, names ...string) []byte {
	t.Helper()
	js := filepath.Join(repoRoot, "internal", "e2e", "testdata", "js")
	files := map[string][]byte{}
	err := filepath.WalkDir(filepath.Join(js, "node_modules"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(js, p)
		b, err := os.ReadFile(p)
		files[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatalf("the JavaScript SDK is required; .ci/run installs it: %v", err)
	}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(js, n))
		if err != nil {
			t.Fatal(err)
		}
		files[n] = b
	}
	return makeZip(t, files)
}

// streamed is what InvokeWithResponseStream gave: the chunks, and how it
// completed.
type streamed struct {
	chunks   [][]byte
	complete *ltypes.InvokeWithResponseStreamCompleteEvent
}

func (s streamed) body() []byte { return bytes.Join(s.chunks, nil) }

// readStream reads the event stream; onChunk sees each chunk as it comes.
func readStream(t *testing.T, out *lambda.InvokeWithResponseStreamOutput, onChunk func(i int, b []byte)) streamed {
	t.Helper()
	stream := out.GetStream()
	defer stream.Close()
	var s streamed
	for ev := range stream.Events() {
		switch e := ev.(type) {
		case *ltypes.InvokeWithResponseStreamResponseEventMemberPayloadChunk:
			if onChunk != nil {
				onChunk(len(s.chunks), e.Value.Payload)
			}
			s.chunks = append(s.chunks, e.Value.Payload)
		case *ltypes.InvokeWithResponseStreamResponseEventMemberInvokeComplete:
			v := e.Value
			s.complete = &v
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("event stream: %v", err)
	}
	return s
}

// TestResponseStreaming: InvokeWithResponseStream with aws-sdk-go-v2 and
// boto3, on a Node.js function written with awslambda.streamifyResponse:
// its first chunk reaches the client while the function still runs, an
// error after some chunks ends the stream with InvokeComplete's error, a
// 20 MB answer streams whole, a timeout ends the stream cleanly, a client
// that goes away frees the instance; a buffered function comes as one
// chunk.
func TestResponseStreaming(t *testing.T) {
	s := startServer(t, "")
	ctx := context.Background()
	lc := s.lambda()
	if _, err := s.s3(t).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("signals")}); err != nil {
		t.Fatal(err)
	}
	createFunction(t, lc, "streamer", jsPackage(t, "stream.mjs"), fnOpts{runtime: "nodejs20.x", handler: "stream.handler", timeout: 30, memory: 256})
	createFunction(t, lc, "slow-streamer", jsPackage(t, "stream.mjs"), fnOpts{runtime: "nodejs20.x", handler: "stream.handler", timeout: 2, memory: 256})
	createFunction(t, lc, "buffered", goZip(t), fnOpts{})
	call := func(fn string, event any) *lambda.InvokeWithResponseStreamOutput {
		t.Helper()
		b, _ := json.Marshal(event)
		out, err := lc.InvokeWithResponseStream(ctx, &lambda.InvokeWithResponseStreamInput{FunctionName: aws.String(fn), Payload: b})
		if err != nil {
			t.Fatalf("InvokeWithResponseStream %s: %v", fn, err)
		}
		return out
	}

	// The first chunk arrives before the function may finish: it waits
	// for the object the test puts on reading that chunk.
	got := readStream(t, call("streamer", map[string]any{"chunks": 3, "waitFor": map[string]string{"bucket": "signals", "key": "go"}}), func(i int, b []byte) {
		if i == 0 {
			if _, err := s.s3(t).PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("signals"), Key: aws.String("go"), Body: strings.NewReader("go")}); err != nil {
				t.Error(err)
			}
		}
	})
	if string(got.body()) != "first chunk\nchunk 1\nchunk 2\n" || got.complete == nil || aws.ToString(got.complete.ErrorCode) != "" {
		t.Errorf("stream: %q, complete %+v", got.body(), got.complete)
	}

	// An error after some chunks.
	got = readStream(t, call("streamer", map[string]any{"chunks": 2, "fail": true}), nil)
	if string(got.body()) != "first chunk\nchunk 1\n" || got.complete == nil || aws.ToString(got.complete.ErrorCode) != "Error" ||
		!strings.Contains(aws.ToString(got.complete.ErrorDetails), "broke after some chunks") {
		t.Errorf("an error mid-stream: %q, complete %+v", got.body(), got.complete)
	}

	// 20 MB, past the 6 MB of a buffered answer.
	got = readStream(t, call("streamer", map[string]any{"mb": 20}), nil)
	if n := len(got.body()); n != len("first chunk\n")+20<<20 || got.complete == nil || aws.ToString(got.complete.ErrorCode) != "" {
		t.Errorf("a 20 MB stream: %d bytes, complete %+v", n, got.complete)
	}

	if m := getBody(t, s.Endpoint+"/metrics"); !strings.Contains(m, `stratus_streamed_response_bytes_total{function="streamer"}`) {
		t.Error("streamed bytes are not in the metrics")
	}

	// A timeout mid-stream ends the stream with the timeout's error.
	got = readStream(t, call("slow-streamer", map[string]any{"chunks": 100, "gapMs": 100}), nil)
	if got.complete == nil || aws.ToString(got.complete.ErrorCode) != "Sandbox.Timedout" || len(got.chunks) == 0 {
		t.Errorf("a timeout mid-stream: %d chunks, complete %+v", len(got.chunks), got.complete)
	}

	// A buffered function: its answer in one chunk.
	got = readStream(t, call("buffered", map[string]any{"name": "stream"}), nil)
	if len(got.chunks) != 1 || !bytes.Contains(got.body(), []byte("hello, stream")) || got.complete == nil {
		t.Errorf("a buffered function streamed: %d chunks %q", len(got.chunks), got.body())
	}

	// A client that goes away mid-stream: the instance finishes and is
	// free for the next invocation (one at a time allowed).
	if _, err := lc.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{FunctionName: aws.String("streamer"), ReservedConcurrentExecutions: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	before := serverRSS(t, s)
	// 150 MB the caller will never read.
	b, _ := json.Marshal(map[string]any{"chunks": 5, "gapMs": 50, "mb": 150})
	out, err := lc.InvokeWithResponseStream(cctx, &lambda.InvokeWithResponseStreamInput{FunctionName: aws.String("streamer"), Payload: b})
	if err != nil {
		t.Fatal(err)
	}
	stream := out.GetStream()
	<-stream.Events() // the first chunk
	cancel()
	stream.Close()
	waitFor(t, 20*time.Second, "the instance to be free again", func() bool {
		b, _ := json.Marshal(map[string]any{"chunks": 1})
		out, err := lc.InvokeWithResponseStream(ctx, &lambda.InvokeWithResponseStreamInput{FunctionName: aws.String("streamer"), Payload: b})
		if err != nil {
			return false
		}
		got := readStream(t, out, nil)
		return got.complete != nil && string(got.body()) == "first chunk\n"
	})
	if grown := serverRSS(t, s) - before; grown > 64<<20 {
		t.Errorf("the server grew by %d MB while a stream nobody read went on", grown>>20)
	}

	// boto3.
	dir := t.TempDir()
	script := filepath.Join(dir, "stream.py")
	if err := os.WriteFile(script, []byte(boto3Stream), 0o644); err != nil {
		t.Fatal(err)
	}
	outb, err := runCmd(t, s.clientEnv(dir), boto3Python(t), script, s.Endpoint)
	if err != nil || !strings.Contains(outb, "boto3 stream ok") {
		t.Fatalf("boto3: %v\n%s", err, outb)
	}
}

const boto3Stream = `
import json, sys
import boto3
c = boto3.client("lambda", endpoint_url=sys.argv[1], region_name="us-east-1")
r = c.invoke_with_response_stream(FunctionName="streamer", Payload=json.dumps({"chunks": 3}))
chunks, done = [], None
for ev in r["EventStream"]:
    if "PayloadChunk" in ev:
        chunks.append(ev["PayloadChunk"]["Payload"])
    if "InvokeComplete" in ev:
        done = ev["InvokeComplete"]
assert b"".join(chunks) == b"first chunk\nchunk 1\nchunk 2\n", chunks
assert done is not None and not done.get("ErrorCode"), done
print("boto3 stream ok")
`

// TestStreamingURLs: function URLs in RESPONSE_STREAM mode pass on the
// function's status, headers and each write as it is made: a Go handler
// written for aws-lambda-go's lambdaurl (its first write reaches the
// client while it still runs), and a Node.js one with HttpResponseStream.
func TestStreamingURLs(t *testing.T) {
	s := startServer(t, "")
	ctx := context.Background()
	lc := s.lambda()
	if _, err := s.s3(t).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("url-signals")}); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "urlstream")
	if err := goBuildPlain(bin, "./internal/e2e/testdata/urlstream"); err != nil {
		t.Fatal(err)
	}
	code, _ := os.ReadFile(bin)
	createFunction(t, lc, "go-url", makeZip(t, map[string][]byte{"bootstrap": code}), fnOpts{timeout: 20})
	createFunction(t, lc, "node-url", makeZip(t, map[string][]byte{"urlstream.mjs": mustRead(t, filepath.Join(repoRoot, "internal", "e2e", "testdata", "js", "urlstream.mjs"))}),
		fnOpts{runtime: "nodejs20.x", handler: "urlstream.handler", timeout: 20})
	urls := map[string]string{}
	for _, fn := range []string{"go-url", "node-url"} {
		allowPublicURL(t, lc, fn, "")
		out, err := lc.CreateFunctionUrlConfig(ctx, &lambda.CreateFunctionUrlConfigInput{FunctionName: aws.String(fn), AuthType: ltypes.FunctionUrlAuthTypeNone, InvokeMode: ltypes.InvokeModeResponseStream})
		if err != nil {
			t.Fatal(err)
		}
		if out.InvokeMode != ltypes.InvokeModeResponseStream {
			t.Errorf("invoke mode %s", out.InvokeMode)
		}
		urls[fn] = aws.ToString(out.FunctionUrl)
	}

	resp, err := plainClient.Get(urls["go-url"] + "?wait=url-signals/go")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 201 || resp.Header.Get("X-Streamed-By") != "lambdaurl" || resp.Header.Get("Content-Type") != "text/plain" {
		t.Errorf("lambdaurl's status and headers: %d %v", resp.StatusCode, resp.Header)
	}
	first := make([]byte, len("first\n"))
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "first\n" {
		t.Fatalf("the first write: %q %v", first, err)
	}
	// Only now may the function finish.
	if _, err := s.s3(t).PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("url-signals"), Key: aws.String("go"), Body: strings.NewReader("go")}); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(rest) != "second\n" {
		t.Errorf("the rest: %q", rest)
	}

	resp, err = plainClient.Get(urls["node-url"])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 202 || resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("X-From") != "node" ||
		!strings.Contains(resp.Header.Get("Set-Cookie"), "a=1") || string(body) != "data: 0\n\ndata: 1\n\ndata: 2\n\n" {
		t.Errorf("HttpResponseStream through a URL: %d %v %q", resp.StatusCode, resp.Header, body)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// BenchmarkStreaming: time to first byte of a 1 MiB answer through a
// streaming function URL against a buffered one (the same Node.js code),
// and the throughput of a 64 MiB streamed answer against the echo server
// answering as much, in the same run.
func BenchmarkStreaming(b *testing.B) {
	echo := startEcho(b)
	s := startServer(b, "")
	ctx := context.Background()
	lc := s.lambda()
	pkg := makeZip(b, map[string][]byte{"big.mjs": mustReadB(b, filepath.Join(repoRoot, "internal", "e2e", "testdata", "js", "big.mjs"))})
	urls := map[string]string{}
	for fn, mode := range map[string]ltypes.InvokeMode{"buffered": ltypes.InvokeModeBuffered, "streamed": ltypes.InvokeModeResponseStream} {
		createFunction(b, lc, fn, pkg, fnOpts{runtime: "nodejs20.x", handler: "big." + fn, timeout: 60, memory: 1024})
		allowPublicURL(b, lc, fn, "")
		out, err := lc.CreateFunctionUrlConfig(ctx, &lambda.CreateFunctionUrlConfigInput{FunctionName: aws.String(fn), AuthType: ltypes.FunctionUrlAuthTypeNone, InvokeMode: mode})
		if err != nil {
			b.Fatal(err)
		}
		urls[fn] = aws.ToString(out.FunctionUrl)
	}
	ttfb := func(url string) (first, all time.Duration, n int64) {
		t0 := time.Now()
		resp, err := plainClient.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		one := make([]byte, 1)
		if _, err := io.ReadFull(resp.Body, one); err != nil {
			b.Fatal(err)
		}
		first = time.Since(t0)
		n, _ = io.Copy(io.Discard, resp.Body)
		return first, time.Since(t0), n + 1
	}
	med := func(d []time.Duration) time.Duration {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[len(d)/2]
	}
	var fs, fb []time.Duration
	for range 15 {
		f, _, _ := ttfb(urls["streamed"] + "?mb=1")
		fs = append(fs, f)
		f, _, _ = ttfb(urls["buffered"] + "?mb=1")
		fb = append(fb, f)
	}
	b.ReportMetric(float64(med(fs).Microseconds())/1000, "ttfb-stream-ms")
	b.ReportMetric(float64(med(fb).Microseconds())/1000, "ttfb-buffered-ms")
	b.ReportMetric(float64(med(fs))/float64(med(fb)), "ttfb-ratio")

	_, all, n := ttfb(urls["streamed"] + "?mb=64")
	stream := float64(n) / all.Seconds() / (1 << 20)
	body := bytes.Repeat([]byte("a"), 64<<20)
	t0 := time.Now()
	resp, err := plainClient.Post(echo, "text/plain", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	m, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	base := float64(m) / time.Since(t0).Seconds() / (1 << 20)
	b.ReportMetric(stream, "stream-MB/s")
	b.ReportMetric(stream/base, "stream-ratio")
}

func mustReadB(b *testing.B, p string) []byte {
	data, err := os.ReadFile(p)
	if err != nil {
		b.Fatal(err)
	}
	return data
}
