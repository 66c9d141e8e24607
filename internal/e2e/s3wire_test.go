package e2e

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func hmacSum(key []byte, s string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return m.Sum(nil)
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// streamingPut builds a PUT whose body is signed chunk by chunk
// (STREAMING-AWS4-HMAC-SHA256-PAYLOAD), as SigV4 streaming specifies;
// tamper changes a byte of the second chunk after it was signed.
func streamingPut(t *testing.T, s *server, path string, chunks [][]byte, tamper bool) *http.Request {
	t.Helper()
	creds, err := s.creds().Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, c := range chunks {
		total += len(c)
	}
	now := time.Now().UTC()
	req, _ := http.NewRequest(http.MethodPut, s.Endpoint+path, nil)
	req.Header.Set("X-Amz-Content-Sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
	req.Header.Set("Content-Encoding", "aws-chunked")
	req.Header.Set("X-Amz-Decoded-Content-Length", strconv.Itoa(total))
	signS3(t, req, creds, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", now)
	auth := req.Header.Get("Authorization")
	seed := auth[strings.Index(auth, "Signature=")+len("Signature="):]
	date := now.Format("20060102")
	key := hmacSum([]byte("AWS4"+creds.SecretAccessKey), date)
	key = hmacSum(key, "us-east-1")
	key = hmacSum(key, "s3")
	key = hmacSum(key, "aws4_request")
	scope := date + "/us-east-1/s3/aws4_request"
	prev := seed
	var body bytes.Buffer
	for i, c := range append(chunks, nil) {
		toSign := "AWS4-HMAC-SHA256-PAYLOAD\n" + now.Format("20060102T150405Z") + "\n" + scope + "\n" + prev + "\n" + sha256Hex(nil) + "\n" + sha256Hex(c)
		sig := hex.EncodeToString(hmacSum(key, toSign))
		prev = sig
		data := c
		if tamper && i == 1 {
			data = append([]byte{}, c...)
			data[0] ^= 1
		}
		fmt.Fprintf(&body, "%x;chunk-signature=%s\r\n%s\r\n", len(data), sig, data)
	}
	req.Body = io.NopCloser(bytes.NewReader(body.Bytes()))
	req.ContentLength = int64(body.Len())
	return req
}

// rawS3 sends a request signed with its payload unsigned, and the body as
// given (framing included).
func rawS3(t *testing.T, s *server, method, path string, body []byte, header map[string]string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, s.Endpoint+path, bytes.NewReader(body))
	hash := "UNSIGNED-PAYLOAD"
	for k, v := range header {
		req.Header.Set(k, v)
		if k == "X-Amz-Content-Sha256" {
			hash = v
		}
	}
	req.Header.Set("X-Amz-Content-Sha256", hash)
	creds, _ := s.creds().Retrieve(context.Background())
	signS3(t, req, creds, hash, time.Now())
	resp, err := plainClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func s3Code(t *testing.T, resp *http.Response) (int, string) {
	t.Helper()
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	code := ""
	if i := bytes.Index(b, []byte("<Code>")); i >= 0 {
		rest := b[i+6:]
		code = string(rest[:bytes.Index(rest, []byte("<"))])
	}
	return resp.StatusCode, code
}

// TestS3Wire sends what clients send on the wire, right and wrong: bodies
// signed per chunk, a chunk changed after signing, trailing checksums that
// do not match, broken framing, a payload that is not what its signature
// names, sizes past the limits. Nothing refused is stored.
func TestS3Wire(t *testing.T) {
	s := startServer(t, "")
	c := s.s3(t)
	ctx := context.Background()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("wire")}); err != nil {
		t.Fatal(err)
	}
	stored := func(key string) bool {
		_, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("wire"), Key: aws.String(key)})
		return err == nil
	}
	chunks := [][]byte{randomBytes(64 << 10), randomBytes(64 << 10), randomBytes(1000)}
	resp, err := plainClient.Do(streamingPut(t, s, "/wire/signed", chunks, false))
	if err != nil {
		t.Fatal(err)
	}
	if status, code := s3Code(t, resp); status != 200 {
		t.Fatalf("a body signed per chunk: %d %s", status, code)
	}
	o, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("wire"), Key: aws.String("signed")})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(o.Body)
	o.Body.Close()
	if !bytes.Equal(got, bytes.Join(chunks, nil)) {
		t.Errorf("the object of a signed stream is %d bytes, not its %d (framing stored?)", len(got), len(bytes.Join(chunks, nil)))
	}
	resp, _ = plainClient.Do(streamingPut(t, s, "/wire/tampered", chunks, true))
	if status, code := s3Code(t, resp); status != 403 || code != "SignatureDoesNotMatch" || stored("tampered") {
		t.Errorf("a chunk changed after signing: %d %s, stored %v", status, code, stored("tampered"))
	}

	// Unsigned chunks with a trailing checksum.
	data := []byte("checked by its trailer")
	sum := make([]byte, 4)
	v := crc32.ChecksumIEEE(data)
	sum[0], sum[1], sum[2], sum[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
	framed := func(checksum string) []byte {
		return []byte(fmt.Sprintf("%x\r\n%s\r\n0\r\nx-amz-checksum-crc32:%s\r\n\r\n", len(data), data, checksum))
	}
	hdr := map[string]string{"X-Amz-Content-Sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER", "Content-Encoding": "aws-chunked",
		"X-Amz-Decoded-Content-Length": strconv.Itoa(len(data)), "X-Amz-Trailer": "x-amz-checksum-crc32"}
	if status, code := s3Code(t, rawS3(t, s, "PUT", "/wire/trailer-ok", framed(base64.StdEncoding.EncodeToString(sum)), hdr)); status != 200 {
		t.Errorf("a right trailing checksum: %d %s", status, code)
	}
	if status, code := s3Code(t, rawS3(t, s, "PUT", "/wire/trailer-bad", framed("AAAAAA=="), hdr)); status != 400 || code != "BadDigest" || stored("trailer-bad") {
		t.Errorf("a wrong trailing checksum: %d %s", status, code)
	}
	if status, code := s3Code(t, rawS3(t, s, "PUT", "/wire/broken", []byte("zz\r\nnot hex\r\n"), hdr)); status != 400 || code != "IncompleteBody" || stored("broken") {
		t.Errorf("broken framing: %d %s", status, code)
	}
	short := map[string]string{"X-Amz-Content-Sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER", "Content-Encoding": "aws-chunked", "X-Amz-Decoded-Content-Length": "1000"}
	if status, code := s3Code(t, rawS3(t, s, "PUT", "/wire/short", framed("x"), short)); status != 400 || code != "IncompleteBody" || stored("short") {
		t.Errorf("fewer bytes than declared: %d %s", status, code)
	}
	// A payload that is not the one its signature names.
	named := map[string]string{"X-Amz-Content-Sha256": sha256Hex([]byte("what was signed"))}
	if status, code := s3Code(t, rawS3(t, s, "PUT", "/wire/swapped", []byte("what was sent"), named)); status != 400 || code != "XAmzContentSHA256Mismatch" || stored("swapped") {
		t.Errorf("a payload other than the signed one: %d %s", status, code)
	}
	// Past the limits.
	req, _ := http.NewRequest(http.MethodPut, s.Endpoint+"/wire/huge", io.LimitReader(zeros{}, 1<<20))
	req.ContentLength = 5<<30 + 1
	req.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
	creds, _ := s.creds().Retrieve(ctx)
	signS3(t, req, creds, "UNSIGNED-PAYLOAD", time.Now())
	if resp, err := plainClient.Do(req); err == nil {
		if status, code := s3Code(t, resp); status != 400 || code != "EntityTooLarge" {
			t.Errorf("a PUT of 5 GB and a byte: %d %s", status, code)
		}
	}
	mp, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("wire"), Key: aws.String("parts")})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"0", "10001"} {
		if status, code := s3Code(t, rawS3(t, s, "PUT", "/wire/parts?partNumber="+n+"&uploadId="+aws.ToString(mp.UploadId), []byte("x"), nil)); status != 400 || code != "InvalidArgument" {
			t.Errorf("part number %s: %d %s", n, status, code)
		}
	}
	if status, code := s3Code(t, rawS3(t, s, "PUT", "/wire/parts?partNumber=10000&uploadId="+aws.ToString(mp.UploadId), []byte("x"), nil)); status != 200 {
		t.Errorf("part number 10000: %d %s", status, code)
	}
	if status, code := s3Code(t, rawS3(t, s, "GET", "/nosuchbucket/key", nil, nil)); status != 404 || code != "NoSuchBucket" {
		t.Errorf("a missing bucket: %d %s", status, code)
	}

	// Virtual-hosted addressing: the SDK with a localhost endpoint puts the
	// bucket in the host name (wire.localhost), dialled here to the server.
	_, port, _ := net.SplitHostPort(s.addr)
	dial := &net.Dialer{}
	vc := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://localhost:" + port), Credentials: s.creds(),
		HTTPClient: &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dial.DialContext(ctx, network, s.addr)
		}}}})
	if _, err := vc.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("wire"), Key: aws.String("virtual/hosted.txt"), Body: strings.NewReader("by host name")}); err != nil {
		t.Fatalf("virtual-hosted PUT: %v", err)
	}
	vo, err := vc.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("wire"), Key: aws.String("virtual/hosted.txt")})
	if err != nil {
		t.Fatalf("virtual-hosted GET: %v", err)
	}
	vb, _ := io.ReadAll(vo.Body)
	vo.Body.Close()
	if string(vb) != "by host name" || !stored("virtual/hosted.txt") {
		t.Errorf("virtual-hosted object: %q", vb)
	}
	vl, err := vc.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("wire"), Prefix: aws.String("virtual/")})
	if err != nil || len(vl.Contents) != 1 {
		t.Errorf("virtual-hosted list: %v %v", vl, err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
