package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func runCmd(t *testing.T, env []string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String() + stderr.String(), err
	}
	return stdout.String(), nil
}

// TestAWSCLI drives the server with the AWS CLI, unchanged but for --endpoint-url.
func TestAWSCLI(t *testing.T) {
	if _, err := exec.LookPath("aws"); err != nil {
		t.Fatal("the AWS CLI (aws) is required; .ci/run installs it")
	}
	s := startServer(t, "")
	dir := t.TempDir()
	env := s.clientEnv(dir)
	zipPath := filepath.Join(dir, "fn.zip")
	if err := os.WriteFile(zipPath, goZip(t), 0o644); err != nil {
		t.Fatal(err)
	}
	aws := func(args ...string) (string, error) {
		return runCmd(t, env, "aws", append([]string{"--endpoint-url", s.Endpoint, "--region", "us-east-1", "--output", "json"}, args...)...)
	}
	version, _ := aws("--version")
	binaryFormat := []string{}
	if strings.HasPrefix(strings.TrimSpace(version), "aws-cli/2") {
		binaryFormat = []string{"--cli-binary-format", "raw-in-base64-out"}
	}

	out, err := aws("lambda", "create-function", "--function-name", "cli-fn", "--runtime", "provided.al2023", "--handler", "bootstrap",
		"--role", "arn:aws:iam::000000000000:role/x", "--zip-file", "fileb://"+zipPath, "--timeout", "5")
	if err != nil {
		t.Fatalf("create-function: %v\n%s", err, out)
	}
	var cfg struct {
		FunctionArn string
		Timeout     int
		State       string
	}
	if err := json.Unmarshal([]byte(out), &cfg); err != nil || cfg.Timeout != 5 || cfg.State != "Active" {
		t.Fatalf("create-function output: %v %s", err, out)
	}

	if out, err := aws("lambda", "wait", "function-active-v2", "--function-name", "cli-fn"); err != nil {
		t.Fatalf("wait function-active-v2: %v %s", err, out)
	}

	resultPath := filepath.Join(dir, "out.json")
	args := append([]string{"lambda", "invoke", "--function-name", "cli-fn", "--payload", `{"name":"cli"}`, "--log-type", "Tail"}, binaryFormat...)
	out, err = aws(append(args, resultPath)...)
	if err != nil {
		t.Fatalf("invoke: %v\n%s", err, out)
	}
	var meta struct {
		StatusCode      int
		LogResult       string
		ExecutedVersion string
	}
	if err := json.Unmarshal([]byte(out), &meta); err != nil || meta.StatusCode != 200 || meta.ExecutedVersion != "$LATEST" {
		t.Fatalf("invoke output: %v %s", err, out)
	}
	tail, _ := base64.StdEncoding.DecodeString(meta.LogResult)
	if !strings.Contains(string(tail), "REPORT RequestId") {
		t.Errorf("log tail: %s", tail)
	}
	if b, _ := os.ReadFile(resultPath); !strings.Contains(string(b), "hello, cli") {
		t.Errorf("invoke result: %s", b)
	}

	out, err = aws("lambda", "list-functions")
	if err != nil || !strings.Contains(out, `"cli-fn"`) {
		t.Errorf("list-functions: %v %s", err, out)
	}
	out, err = aws("lambda", "update-function-configuration", "--function-name", "cli-fn", "--memory-size", "512", "--environment", "Variables={ABC=1}")
	if err != nil || !strings.Contains(out, `"MemorySize": 512`) {
		t.Errorf("update-function-configuration: %v %s", err, out)
	}
	out, err = aws("lambda", "get-function", "--function-name", "nope")
	if err == nil || !strings.Contains(out, "ResourceNotFoundException") {
		t.Errorf("get-function of unknown: %v %s", err, out)
	}
	out, err = aws("lambda", "create-function", "--function-name", "cli-fn", "--runtime", "provided.al2023", "--handler", "bootstrap",
		"--role", "arn:aws:iam::000000000000:role/x", "--zip-file", "fileb://"+zipPath)
	if err == nil || !strings.Contains(out, "ResourceConflictException") {
		t.Errorf("duplicate create: %v %s", err, out)
	}
	if out, err := aws("lambda", "delete-function", "--function-name", "cli-fn"); err != nil {
		t.Errorf("delete-function: %v %s", err, out)
	}

	// Queues with the same CLI (current ones speak SQS's JSON protocol).
	out, err = aws("sqs", "create-queue", "--queue-name", "cli-q")
	if err != nil || !strings.Contains(out, s.Endpoint+"/000000000000/cli-q") {
		t.Fatalf("create-queue: %v %s", err, out)
	}
	qurl := s.Endpoint + "/000000000000/cli-q"
	if out, err := aws("sqs", "send-message", "--queue-url", qurl, "--message-body", "from the cli",
		"--message-attributes", `{"k":{"DataType":"String","StringValue":"v"}}`); err != nil || !strings.Contains(out, "MD5OfMessageAttributes") {
		t.Fatalf("send-message: %v %s", err, out)
	}
	out, err = aws("sqs", "receive-message", "--queue-url", qurl, "--message-attribute-names", "All", "--wait-time-seconds", "2")
	var rcv struct {
		Messages []struct {
			Body              string
			ReceiptHandle     string
			MessageAttributes map[string]struct{ StringValue string }
		}
	}
	if err != nil || json.Unmarshal([]byte(out), &rcv) != nil || len(rcv.Messages) != 1 || rcv.Messages[0].Body != "from the cli" || rcv.Messages[0].MessageAttributes["k"].StringValue != "v" {
		t.Fatalf("receive-message: %v %s", err, out)
	}
	if out, err := aws("sqs", "delete-message", "--queue-url", qurl, "--receipt-handle", rcv.Messages[0].ReceiptHandle); err != nil {
		t.Fatalf("delete-message: %v %s", err, out)
	}
	if out, err := aws("sqs", "get-queue-url", "--queue-name", "nope"); err == nil || !strings.Contains(out, "NonExistentQueue") && !strings.Contains(out, "QueueDoesNotExist") {
		t.Errorf("get-queue-url of unknown: %v %s", err, out)
	}
}

const boto3Script = `
import base64, io, json, sys, zipfile
import boto3, botocore

endpoint, zip_path = sys.argv[1], sys.argv[2]
c = boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1")
code = open(zip_path, "rb").read()

buf = io.BytesIO()
with zipfile.ZipFile(buf, "w") as z:
    z.writestr("app.py", "def handler(event, context):\n    return {'sum': event['a'] + event['b'], 'fn': context.function_name}\n")
c.create_function(FunctionName="boto-py", Runtime="python3.11", Handler="app.handler",
                  Role="arn:aws:iam::000000000000:role/x", Code={"ZipFile": buf.getvalue()})
c.get_waiter("function_active_v2").wait(FunctionName="boto-py")
r = c.invoke(FunctionName="boto-py", Payload=json.dumps({"a": 2, "b": 3}), LogType="Tail")
body = json.loads(r["Payload"].read())
assert body == {"sum": 5, "fn": "boto-py"}, body
assert "REPORT RequestId" in base64.b64decode(r["LogResult"]).decode()

cfg = c.create_function(FunctionName="boto-go", Runtime="provided.al2023", Handler="bootstrap",
                        Role="arn:aws:iam::000000000000:role/x", Code={"ZipFile": code}, MemorySize=256)
assert cfg["MemorySize"] == 256 and cfg["State"] == "Active", cfg
r = c.invoke(FunctionName="boto-go", Payload=b'{"fail":"error"}')
assert r["FunctionError"] == "Unhandled", r
assert json.loads(r["Payload"].read())["errorMessage"] == "failed on purpose"

try:
    c.get_function(FunctionName="missing")
    raise SystemExit("expected ResourceNotFoundException")
except c.exceptions.ResourceNotFoundException as e:
    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 404

try:
    c.create_function(FunctionName="boto-bad", Runtime="provided.al2023", Handler="bootstrap",
                      Role="arn:aws:iam::000000000000:role/x", Code={"ZipFile": b"not a zip"})
    raise SystemExit("expected InvalidParameterValueException")
except c.exceptions.InvalidParameterValueException:
    pass

try:
    c.invoke(FunctionName="boto-go", Payload=b"x" * (6 * 1024 * 1024 + 1))
    raise SystemExit("expected RequestTooLargeException")
except c.exceptions.RequestTooLargeException:
    pass

names = [f["FunctionName"] for p in c.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 1}) for f in p["Functions"]]
assert names == ["boto-go", "boto-py"], names
c.delete_function(FunctionName="boto-py")
print("boto3 ok")
`

// boto3Python finds a python3 that has boto3: the one on PATH, or
// Debian's (where .ci/run installs python3-boto3).
func boto3Python(t *testing.T) string {
	for _, py := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(py, "-c", "import boto3").Run() == nil {
			return py
		}
	}
	t.Fatal("boto3 is required; .ci/run installs it (Debian package python3-boto3)")
	return ""
}

// TestBoto3 drives the server with boto3.
func TestBoto3(t *testing.T) {
	s := startServer(t, "")
	dir := t.TempDir()
	zipPath := filepath.Join(dir, "fn.zip")
	if err := os.WriteFile(zipPath, goZip(t), 0o644); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "t.py")
	if err := os.WriteFile(script, []byte(boto3Script), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runCmd(t, s.clientEnv(dir), boto3Python(t), script, s.Endpoint, zipPath)
	if err != nil || !strings.Contains(out, "boto3 ok") {
		t.Fatalf("boto3: %v\n%s", err, out)
	}
}

// TestStratusCLI deploys, invokes, lists, reads logs and usage, and removes
// with the stratus CLI.
func TestStratusCLI(t *testing.T) {
	s := startServer(t, "")
	// The CLI finds the root profile in the server's data folder.
	env := append(os.Environ(), "STRATUS_ENDPOINT="+s.Endpoint, "STRATUS_DATA_DIR="+s.dataDir)
	stratus := func(args ...string) (string, error) {
		cmd := exec.Command(stratusBin, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	goDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(goDir, "bootstrap"), goBootstrap, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := stratus("deploy", "hello-go", goDir, "--memory", "256", "--env", "COLOR=green"); err != nil {
		t.Fatalf("deploy go: %v\n%s", err, out)
	}
	if out, err := stratus("deploy", "hello-node", filepath.Join(repoRoot, "examples", "node-hello")); err != nil {
		t.Fatalf("deploy node: %v\n%s", err, out)
	}
	if out, err := stratus("deploy", "hello-py", filepath.Join(repoRoot, "examples", "python-hello"), "--timeout", "5"); err != nil {
		t.Fatalf("deploy python: %v\n%s", err, out)
	}
	for fn, want := range map[string]string{"hello-go": "hello, cli", "hello-node": "hello, cli", "hello-py": "hello, cli"} {
		out, err := stratus("invoke", fn, `{"name":"cli","env":"COLOR"}`)
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("invoke %s: %v %s", fn, err, out)
		}
	}
	out, _ := stratus("invoke", "hello-go", `{"env":"COLOR"}`)
	if !strings.Contains(out, `"envValue":"green"`) {
		t.Errorf("--env not applied: %s", out)
	}
	// Redeploy updates in place.
	if out, err := stratus("deploy", "hello-go", goDir, "--memory", "512"); err != nil || !strings.Contains(out, "updated hello-go") {
		t.Errorf("redeploy: %v %s", err, out)
	}
	if out, err := stratus("invoke", "hello-go", `{"fail":"error"}`); err == nil || !strings.Contains(out, "failed on purpose") {
		t.Errorf("invoke of a failing function must fail: %v %s", err, out)
	}
	out, err := stratus("ls")
	if err != nil || !strings.Contains(out, "hello-go") || !strings.Contains(out, "512 MB") || !strings.Contains(out, "python3") {
		t.Errorf("ls: %v %s", err, out)
	}
	// Plain words for what went wrong, a version, and async invokes.
	if out, err := stratus("invoke", "nope"); err == nil || !strings.HasPrefix(out, "stratus invoke: Function not found: arn:aws:lambda:us-east-1:000000000000:function:nope") {
		t.Errorf("invoke of no function: %v %q", err, out)
	}
	if out, err := stratus("ls", "--endpoint", "http://127.0.0.1:1"); err == nil || !strings.Contains(out, "cannot reach Stratus at http://127.0.0.1:1: is `stratus server` running?") {
		t.Errorf("ls with no server: %v %q", err, out)
	}
	if out, err := stratus("version"); err != nil || !strings.HasPrefix(out, "stratus ") || !strings.Contains(out, "go1.") {
		t.Errorf("version: %v %q", err, out)
	}

	// Logs are stored off the invocation path; give the batch a moment.
	waitFor(t, 5*time.Second, "logs", func() bool {
		out, _ := stratus("logs", "hello-node")
		return strings.Contains(out, "REPORT RequestId") && strings.Contains(out, "INFO\tevent")
	})
	// Follow mode prints lines as they come.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	follow := exec.CommandContext(ctx, stratusBin, "logs", "hello-py", "-f", "--since", "1s")
	follow.Env = env
	var followed lockedBuffer
	follow.Stdout = &followed
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if _, err := stratus("invoke", "hello-py", `{"name":"followed"}`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "followed log line", func() bool { return strings.Contains(followed.String(), "'followed'") })
	cancel()
	_ = follow.Wait()

	waitFor(t, 5*time.Second, "usage", func() bool {
		out, _ := stratus("usage", "--json")
		var rep struct {
			Functions []struct {
				Function   string  `json:"function"`
				Requests   int     `json:"requests"`
				Errors     int     `json:"errors"`
				ColdStarts int     `json:"coldStarts"`
				GBSeconds  float64 `json:"gbSeconds"`
				Cost       float64 `json:"cost"`
			} `json:"functions"`
		}
		if json.Unmarshal([]byte(out), &rep) != nil {
			return false
		}
		for _, f := range rep.Functions {
			if f.Function == "hello-go" {
				return f.Requests == 3 && f.Errors == 1 && f.ColdStarts == 2 && f.GBSeconds > 0 && f.Cost > 0
			}
		}
		return false
	})
	out, err = stratus("usage")
	if err != nil || !strings.Contains(out, "hello-go") || !strings.Contains(out, "TOTAL") || !strings.Contains(out, "per GB-second") {
		t.Errorf("usage: %v %s", err, out)
	}
	if out, err := stratus("invoke", "hello-node", `{"name":"later"}`, "--async"); err != nil || !strings.HasPrefix(out, "queued: request id ") {
		t.Errorf("invoke --async: %v %q", err, out)
	}
	if out, err := stratus("rm", "hello-go", "hello-node"); err != nil {
		t.Errorf("rm: %v %s", err, out)
	}
	out, _ = stratus("ls")
	if strings.Contains(out, "hello-go") || !strings.Contains(out, "hello-py") {
		t.Errorf("ls after rm: %s", out)
	}
	if out, err := stratus("invoke", "hello-go"); err == nil || !strings.Contains(out, "ResourceNotFoundException") {
		t.Errorf("invoke removed: %v %s", err, out)
	}
	if out, err := stratus("--help"); err != nil || !strings.Contains(out, "deploy") {
		t.Errorf("help: %v %s", err, out)
	}
}
