package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	ltypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// TestS3Clients: the AWS CLI's s3 commands, boto3's threaded multipart
// transfers of 100 MB with its default checksums and an s3v4 presigned
// URL, and the JavaScript SDK v3 with its aws-chunked bodies and trailing
// checksums, on one server.
func TestS3Clients(t *testing.T) {
	s := startServer(t, "")
	home := t.TempDir()
	env := s.clientEnv(home)
	cli := func(args ...string) (string, error) {
		return runCmd(t, env, "aws", append([]string{"--endpoint-url", s.Endpoint, "--region", "us-east-1"}, args...)...)
	}
	dir := t.TempDir()
	big := filepath.Join(dir, "big.bin")
	if err := os.WriteFile(big, randomBytes(30<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(dir, "tree")
	for _, f := range []string{"a.txt", "sub/b.txt", "sub/deeper/c.txt"} {
		_ = os.MkdirAll(filepath.Dir(filepath.Join(tree, f)), 0o755)
		_ = os.WriteFile(filepath.Join(tree, f), []byte("content of "+f), 0o644)
	}
	steps := [][]string{
		{"s3", "mb", "s3://cli-bucket"},
		{"s3", "cp", big, "s3://cli-bucket/big.bin"},
		{"s3", "cp", "s3://cli-bucket/big.bin", filepath.Join(dir, "back.bin")},
		{"s3", "sync", tree, "s3://cli-bucket/tree/"},
		{"s3", "mv", "s3://cli-bucket/tree/a.txt", "s3://cli-bucket/moved.txt"},
		{"s3api", "put-object", "--bucket", "cli-bucket", "--key", "api.txt", "--body", filepath.Join(tree, "a.txt"), "--checksum-algorithm", "SHA256"},
	}
	for _, st := range steps {
		if out, err := cli(st...); err != nil {
			t.Fatalf("aws %v: %v\n%s", st, err, out)
		}
	}
	a, _ := os.ReadFile(big)
	b, _ := os.ReadFile(filepath.Join(dir, "back.bin"))
	if !bytes.Equal(a, b) {
		t.Error("aws s3 cp: the 30 MB object came back different")
	}
	out, err := cli("s3", "ls", "--recursive", "s3://cli-bucket/")
	for _, k := range []string{"big.bin", "moved.txt", "tree/sub/b.txt", "tree/sub/deeper/c.txt", "api.txt"} {
		if err != nil || !strings.Contains(out, k) {
			t.Errorf("aws s3 ls lacks %s: %v\n%s", k, err, out)
		}
	}
	if strings.Contains(out, "tree/a.txt") {
		t.Errorf("aws s3 mv left its source:\n%s", out)
	}
	if out, err := cli("s3", "rb", "s3://cli-bucket"); err == nil || !strings.Contains(out, "BucketNotEmpty") {
		t.Errorf("rb of a full bucket: %v %s", err, out)
	}

	// boto3.
	script := filepath.Join(dir, "s3.py")
	if err := os.WriteFile(script, []byte(boto3S3), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = runCmd(t, env, boto3Python(t), script, s.Endpoint, dir)
	if err != nil || !strings.Contains(out, "boto3 s3 ok") {
		t.Fatalf("boto3: %v\n%s", err, out)
	}

	// The JavaScript SDK v3.
	js := filepath.Join(repoRoot, "internal", "e2e", "testdata", "js")
	if _, err := os.Stat(filepath.Join(js, "node_modules", "@aws-sdk", "client-s3")); err != nil {
		t.Fatal("the JavaScript SDK is required; .ci/run installs it (npm install in internal/e2e/testdata/js)")
	}
	out, err = runCmd(t, append(env, "NODE_PATH="+filepath.Join(js, "node_modules")), "node", filepath.Join(js, "s3.mjs"), s.Endpoint)
	if err != nil || !strings.Contains(out, "js s3 ok") {
		t.Fatalf("JavaScript SDK: %v\n%s", err, out)
	}

	if out, err := cli("s3", "rm", "--recursive", "s3://cli-bucket/", "--only-show-errors"); err != nil {
		t.Fatalf("aws s3 rm: %v\n%s", err, out)
	}
	if out, err := cli("s3", "rb", "s3://cli-bucket"); err != nil {
		t.Errorf("aws s3 rb: %v\n%s", err, out)
	}
	// Requests and storage are recorded (at a clean stop, or each minute)
	// and priced at S3's public prices.
	if err := s.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	s.restart()
	cmd := exec.Command(stratusBin, "usage")
	cmd.Env = append(os.Environ(), "STRATUS_ENDPOINT="+s.Endpoint, "STRATUS_DATA_DIR="+s.dataDir)
	usage, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(usage), "cli-bucket") || !strings.Contains(string(usage), "S3 prices: $0.023 per GB-month") {
		t.Errorf("stratus usage: %v\n%s", err, usage)
	}
}

const boto3S3 = `
import hashlib, os, sys, urllib.request
import boto3
from botocore.config import Config
from boto3.s3.transfer import TransferConfig

endpoint, dirname = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
s3.create_bucket(Bucket="boto")
src = os.path.join(dirname, "hundred.bin")
with open(src, "wb") as f:
    f.write(os.urandom(100 * 1024 * 1024))
cfg = TransferConfig(multipart_threshold=8 * 1024 * 1024, multipart_chunksize=8 * 1024 * 1024, max_concurrency=8)
s3.upload_file(src, "boto", "hundred.bin", Config=cfg)
head = s3.head_object(Bucket="boto", Key="hundred.bin")
assert head["ContentLength"] == 100 * 1024 * 1024, head
assert head["ETag"].endswith('-13"'), head["ETag"]
dst = os.path.join(dirname, "hundred.back")
s3.download_file("boto", "hundred.bin", dst, Config=cfg)
h = lambda p: hashlib.sha256(open(p, "rb").read()).hexdigest()
assert h(src) == h(dst), "download differs"
s3.put_object(Bucket="boto", Key="small.txt", Body=b"hello from boto3", ChecksumAlgorithm="CRC32")
got = s3.get_object(Bucket="boto", Key="small.txt", ChecksumMode="ENABLED")
assert got["Body"].read() == b"hello from boto3"
assert got.get("ChecksumCRC32"), got
url = s3.generate_presigned_url("get_object", Params={"Bucket": "boto", "Key": "small.txt"}, ExpiresIn=60)
assert urllib.request.urlopen(url).read() == b"hello from boto3"
try:
    s3.get_object(Bucket="boto", Key="missing")
    raise SystemExit("no error for a missing key")
except s3.exceptions.NoSuchKey:
    pass
for key in ("hundred.bin", "small.txt"):
    s3.delete_object(Bucket="boto", Key=key)
s3.delete_bucket(Bucket="boto")
print("boto3 s3 ok")
`

// TestS3UploadTrigger is the photo-thumbnail flow: an upload under
// uploads/ starts a Python function that reads the object with boto3 and
// writes its result under results/; a delete is delivered to a queue.
func TestS3UploadTrigger(t *testing.T) {
	s := startServer(t, "")
	ctx := context.Background()
	c := s.s3(t)
	lc := s.lambda()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("photos")}); err != nil {
		t.Fatal(err)
	}
	createFunction(t, lc, "thumbnail", makeZip(t, map[string][]byte{"app.py": []byte(thumbnailPy)}), fnOpts{runtime: "python3.11", handler: "app.handler", timeout: 30})
	cfg := `<NotificationConfiguration><CloudFunctionConfiguration><Id>thumbs</Id><CloudFunction>arn:aws:lambda:us-east-1:000000000000:function:thumbnail</CloudFunction>` +
		`<Event>s3:ObjectCreated:*</Event><Filter><S3Key><FilterRule><Name>prefix</Name><Value>uploads/</Value></FilterRule></S3Key></Filter></CloudFunctionConfiguration></NotificationConfiguration>`
	// Without a permission for S3 to invoke, the destination is refused.
	if code := putNotification(t, s, "photos", cfg); code != 400 {
		t.Errorf("a function S3 may not invoke: %d", code)
	}
	if _, err := lc.AddPermission(ctx, &lambda.AddPermissionInput{FunctionName: aws.String("thumbnail"), StatementId: aws.String("s3"),
		Action: aws.String("lambda:InvokeFunction"), Principal: aws.String("s3.amazonaws.com"), SourceArn: aws.String("arn:aws:s3:::photos")}); err != nil {
		t.Fatal(err)
	}
	if code := putNotification(t, s, "photos", cfg); code != 200 {
		t.Fatalf("notification configuration: %d", code)
	}
	overlap := strings.Replace(cfg, "</NotificationConfiguration>", strings.ReplaceAll(cfg[len("<NotificationConfiguration>"):len(cfg)-len("</NotificationConfiguration>")], "thumbs", "again")+"</NotificationConfiguration>", 1)
	if code := putNotification(t, s, "photos", overlap); code != 400 {
		t.Errorf("overlapping configurations: %d", code)
	}
	start := time.Now()
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("photos"), Key: aws.String("uploads/my cat.jpg"), Body: strings.NewReader("a picture of a cat")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("photos"), Key: aws.String("elsewhere.jpg"), Body: strings.NewReader("not under uploads/")}); err != nil {
		t.Fatal(err)
	}
	var result []byte
	waitFor(t, 30*time.Second, "the function's result", func() bool {
		o, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("photos"), Key: aws.String("results/my cat.jpg.json")})
		if err != nil {
			return false
		}
		defer o.Body.Close()
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(o.Body)
		result = buf.Bytes()
		return true
	})
	t.Logf("upload to result: %v", time.Since(start))
	var got struct {
		Bucket, Key, EventName, ETag, EventSource, EventVersion string
		Size                                                    int
		Sha256                                                  string
	}
	if err := json.Unmarshal(result, &got); err != nil {
		t.Fatalf("%v: %s", err, result)
	}
	sum := sha256.Sum256([]byte("a picture of a cat"))
	if got.Bucket != "photos" || got.Key != "uploads/my+cat.jpg" || got.EventName != "ObjectCreated:Put" || got.Size != 18 ||
		got.EventSource != "aws:s3" || got.EventVersion != "2.1" || got.Sha256 != fmt.Sprintf("%x", sum) || got.ETag == "" {
		t.Errorf("the event as the function saw it: %+v", got)
	}
	if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("photos"), Key: aws.String("results/elsewhere.jpg.json")}); err == nil {
		t.Error("an upload outside the prefix ran the function")
	}
	// Deletes go to a queue.
	q := createQueue(t, s.sqs(), "removed", nil)
	qcfg := `<NotificationConfiguration><QueueConfiguration><Queue>arn:aws:sqs:us-east-1:000000000000:removed</Queue><Event>s3:ObjectRemoved:*</Event></QueueConfiguration></NotificationConfiguration>`
	if code := putNotification(t, s, "photos", qcfg); code != 200 {
		t.Fatalf("queue configuration: %d", code)
	}
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("photos"), Key: aws.String("elsewhere.jpg")}); err != nil {
		t.Fatal(err)
	}
	var msg string
	waitFor(t, 10*time.Second, "the delete's message", func() bool {
		if m := receive(t, s.sqs(), q, 1, 1); len(m) == 1 {
			msg = aws.ToString(m[0].Body)
			return true
		}
		return false
	})
	if !strings.Contains(msg, `"eventName":"ObjectRemoved:Delete"`) || !strings.Contains(msg, `"key":"elsewhere.jpg"`) {
		t.Errorf("the delete's message: %s", msg)
	}
	// Deployment packages from S3, as SAM and Terraform upload them.
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("photos"), Key: aws.String("packages/fn.zip"), Body: bytes.NewReader(goZip(t))}); err != nil {
		t.Fatal(err)
	}
	_, err := lc.CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String("from-s3"), Runtime: "provided.al2023", Handler: aws.String("bootstrap"),
		Role: aws.String("arn:aws:iam::000000000000:role/test"), Code: &ltypes.FunctionCode{S3Bucket: aws.String("photos"), S3Key: aws.String("packages/fn.zip")}})
	if err != nil {
		t.Fatalf("create from S3: %v", err)
	}
	if out := invoke(t, lc, "from-s3", `{"name":"s3"}`); out.FunctionError != nil {
		t.Errorf("a function deployed from S3: %s", out.Payload)
	}
	_, err = lc.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{FunctionName: aws.String("from-s3"), S3Bucket: aws.String("photos"), S3Key: aws.String("packages/none.zip")})
	if errorCode(err) != "InvalidParameterValueException" || !strings.Contains(err.Error(), "NoSuchKey") {
		t.Errorf("code from a missing key: %v", err)
	}
	cmd := exec.Command(stratusBin, "buckets")
	cmd.Env = append(os.Environ(), "STRATUS_ENDPOINT="+s.Endpoint, "STRATUS_DATA_DIR="+s.dataDir)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "photos") || !strings.Contains(string(out), "NOTIFICATIONS") {
		t.Errorf("stratus buckets: %v\n%s", err, out)
	}
	n, err := c.GetBucketNotificationConfiguration(ctx, &s3.GetBucketNotificationConfigurationInput{Bucket: aws.String("photos")})
	if err != nil || len(n.QueueConfigurations) != 1 || len(n.LambdaFunctionConfigurations) != 0 {
		t.Errorf("get notification configuration: %+v %v", n, err)
	}
}

// signS3 signs req for S3 (whose canonical path is not escaped twice)
// with creds, naming hash as its payload's, at now.
func signS3(t testing.TB, req *http.Request, creds aws.Credentials, hash string, now time.Time) {
	t.Helper()
	if err := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true }).SignHTTP(context.Background(), creds, req, hash, "s3", "us-east-1", now); err != nil {
		t.Fatal(err)
	}
}

// s3HTTP sends raw S3 requests signed by newS3Request.
var s3HTTP = plainClient

// newS3Request is a request to the S3 API signed for the service s3 with
// the root's key, its payload hash in x-amz-content-sha256.
func newS3Request(t *testing.T, s *server, method, path string, body []byte) (*http.Request, error) {
	t.Helper()
	req, err := http.NewRequest(method, s.Endpoint+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", hash)
	creds, err := s.creds().Retrieve(context.Background())
	if err != nil {
		return nil, err
	}
	signS3(t, req, creds, hash, time.Now())
	return req, nil
}

// putNotification sends a raw PutBucketNotificationConfiguration body,
// signed, and returns the status.
func putNotification(t *testing.T, s *server, bucket, body string) int {
	t.Helper()
	req, _ := newS3Request(t, s, "PUT", "/"+bucket+"?notification=", []byte(body))
	resp, err := s3HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

const thumbnailPy = `
import hashlib, json, urllib.parse
import boto3

s3 = boto3.client("s3")

def handler(event, context):
    rec = event["Records"][0]
    bucket = rec["s3"]["bucket"]["name"]
    key = rec["s3"]["object"]["key"]
    real = urllib.parse.unquote_plus(key)
    body = s3.get_object(Bucket=bucket, Key=real)["Body"].read()
    out = {"Bucket": bucket, "Key": key, "EventName": rec["eventName"], "Size": rec["s3"]["object"]["size"],
           "ETag": rec["s3"]["object"]["eTag"], "EventSource": rec["eventSource"], "EventVersion": rec["eventVersion"],
           "Sha256": hashlib.sha256(body).hexdigest()}
    s3.put_object(Bucket=bucket, Key="results/" + real.split("/", 1)[1] + ".json", Body=json.dumps(out).encode())
    return out
`

// TestS3FromFunctions: inside instances, aws-sdk-go-v2 (path-style) and
// the JavaScript SDK v3 (packaged with the function, as on Lambda) write
// and read objects with no setup beyond the environment every instance
// has.
func TestS3FromFunctions(t *testing.T) {
	s := startServer(t, "")
	ctx := context.Background()
	if _, err := s.s3(t).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("from-fns")}); err != nil {
		t.Fatal(err)
	}
	lc := s.lambda()
	probe := filepath.Join(t.TempDir(), "s3probe")
	if err := goBuildPlain(probe, "./internal/e2e/testdata/s3probe"); err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(probe)
	if err != nil {
		t.Fatal(err)
	}
	createFunction(t, lc, "go-s3", makeZip(t, map[string][]byte{"bootstrap": bin}), fnOpts{timeout: 20})
	createFunction(t, lc, "node-s3", jsPackage(t, "fn.mjs"), fnOpts{runtime: "nodejs20.x", handler: "fn.handler", timeout: 20, memory: 256})
	for _, f := range []string{"go-s3", "node-s3"} {
		payload := fmt.Sprintf(`{"bucket":"from-fns","key":"written-by/%s","body":"hello from %s"}`, f, f)
		out := invoke(t, lc, f, payload)
		if out.FunctionError != nil || string(out.Payload) != fmt.Sprintf(`"hello from %s"`, f) {
			t.Errorf("%s: %s", f, out.Payload)
		}
	}
}
