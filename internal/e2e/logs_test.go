package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

const logNode = `export const handler = async (event) => {
  console.debug("debug-line " + event.mark);
  console.info("info-line " + event.mark);
  console.warn("warn-line " + event.mark);
  console.error("error-line " + event.mark);
  return "ok";
};
`

const logPython = `import logging
logger = logging.getLogger()
def handler(event, context):
    logger.debug("py-debug %s", event["mark"])
    logger.info("py-info %s", event["mark"])
    logger.error("py-error %s", event["mark"])
    return "ok"
`

// TestStructuredLogs: LoggingConfig's JSON format and levels for Node.js,
// Python and Go functions, platform records as JSON, and the Text format
// as before; stratus logs with times, request ids and filters.
func TestStructuredLogs(t *testing.T) {
	s := startServer(t, "", "--log-format", "json")
	ctx := context.Background()
	c := s.lambda()
	create := func(name, runtime, handler string, zip []byte, lc *types.LoggingConfig) {
		t.Helper()
		if _, err := c.CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String(name), Runtime: types.Runtime(runtime), Handler: aws.String(handler),
			Role: aws.String("arn:aws:iam::000000000000:role/test"), Code: &types.FunctionCode{ZipFile: zip}, LoggingConfig: lc}); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
	}
	nodeZip := makeZip(t, map[string][]byte{"index.mjs": []byte(logNode)})
	pyZip := makeZip(t, map[string][]byte{"app.py": []byte(logPython)})
	create("node-json", "nodejs20.x", "index.handler", nodeZip, &types.LoggingConfig{LogFormat: types.LogFormatJson, ApplicationLogLevel: types.ApplicationLogLevelWarn})
	create("node-text", "nodejs20.x", "index.handler", nodeZip, nil)
	create("py-json", "python3.11", "app.handler", pyZip, &types.LoggingConfig{LogFormat: types.LogFormatJson})
	create("py-text", "python3.11", "app.handler", pyZip, nil)
	create("go-quiet", "provided.al2023", "bootstrap", goZip(t), &types.LoggingConfig{LogFormat: types.LogFormatJson, SystemLogLevel: types.SystemLogLevelWarn})
	bin := filepath.Join(t.TempDir(), "bootstrap")
	if err := goBuildPlain(bin, "./internal/e2e/testdata/jsonlog"); err != nil {
		t.Fatal(err)
	}
	goJSON, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	create("go-json", "provided.al2023", "bootstrap", makeZip(t, map[string][]byte{"bootstrap": goJSON}), &types.LoggingConfig{LogFormat: types.LogFormatJson, ApplicationLogLevel: types.ApplicationLogLevelWarn})
	if _, err := c.CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String("bad-levels"), Runtime: "provided.al2023", Handler: aws.String("bootstrap"),
		Role: aws.String("arn:aws:iam::000000000000:role/test"), Code: &types.FunctionCode{ZipFile: goZip(t)},
		LoggingConfig: &types.LoggingConfig{ApplicationLogLevel: types.ApplicationLogLevelDebug}}); errorCode(err) != "InvalidParameterValueException" {
		t.Errorf("levels without the JSON format: %v", err)
	}
	got, err := c.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("node-json")})
	if err != nil || got.LoggingConfig == nil || got.LoggingConfig.LogFormat != types.LogFormatJson || got.LoggingConfig.ApplicationLogLevel != types.ApplicationLogLevelWarn ||
		got.LoggingConfig.SystemLogLevel != types.SystemLogLevelInfo || aws.ToString(got.LoggingConfig.LogGroup) != "/aws/lambda/node-json" {
		t.Errorf("LoggingConfig: %v %+v", err, got.LoggingConfig)
	}

	tails := map[string]string{}
	ids := map[string]string{}
	for _, fn := range []string{"node-json", "node-text", "py-json", "py-text", "go-quiet", "go-json"} {
		out, tail := invokeTail(t, c, fn, `{"mark":"m1","name":"x"}`)
		if out.FunctionError != nil {
			t.Fatalf("%s: %s", fn, out.Payload)
		}
		tails[fn] = tail
		ids[fn] = s.lastRequestID(t, tail)
	}
	records := func(tail string) []map[string]any {
		var out []map[string]any
		for _, line := range strings.Split(strings.TrimSpace(tail), "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) != nil {
				t.Errorf("not a JSON record in the JSON format: %q", line)
				continue
			}
			out = append(out, rec)
		}
		return out
	}
	// Node.js, JSON, WARN: warn and error records with the request id, the
	// platform's start and report; no info or debug.
	var kinds []string
	for _, rec := range records(tails["node-json"]) {
		switch {
		case rec["type"] != nil:
			kinds = append(kinds, rec["type"].(string))
		default:
			if rec["requestId"] != ids["node-json"] {
				t.Errorf("record without its request id: %v", rec)
			}
			kinds = append(kinds, rec["level"].(string)+":"+rec["message"].(string))
		}
	}
	if want := "platform.start,WARN:warn-line m1,ERROR:error-line m1,platform.report"; strings.Join(kinds, ",") != want {
		t.Errorf("node-json records %v, want %s", kinds, want)
	}
	for _, rec := range records(tails["node-json"]) {
		if rec["type"] == "platform.report" {
			r := rec["record"].(map[string]any)
			m := r["metrics"].(map[string]any)
			if r["status"] != "success" || m["durationMs"] == nil || m["billedDurationMs"] == nil || m["memorySizeMB"].(float64) != 128 {
				t.Errorf("platform.report %v", rec)
			}
		}
	}
	// Python, JSON at the default INFO: info and error, not debug.
	var py []string
	for _, rec := range records(tails["py-json"]) {
		if rec["level"] != nil {
			py = append(py, rec["level"].(string)+":"+rec["message"].(string)+":"+rec["logger"].(string))
			if rec["requestId"] != ids["py-json"] || !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`).MatchString(rec["timestamp"].(string)) {
				t.Errorf("python record %v", rec)
			}
		}
	}
	if want := "INFO:py-info m1:root,ERROR:py-error m1:root"; strings.Join(py, ",") != want {
		t.Errorf("py-json records %v, want %s", py, want)
	}
	// Text formats are Lambda's tab-separated lines.
	if !strings.Contains(tails["node-text"], ids["node-text"]+"\tINFO\tinfo-line m1") || !strings.Contains(tails["node-text"], "START RequestId: "+ids["node-text"]) {
		t.Errorf("node text format:\n%s", tails["node-text"])
	}
	if !regexp.MustCompile(`\[ERROR\]\t\S+Z\t`+ids["py-text"]+`\tpy-error m1`).MatchString(tails["py-text"]) || strings.Contains(tails["py-text"], "py-info") {
		t.Errorf("python text format:\n%s", tails["py-text"])
	}
	// A Go function's slog JSON records below WARN are dropped; a plain
	// line is kept as it is.
	for _, want := range []string{`"msg":"go-warn"`, `"msg":"go-error"`, "\ngo-plain\n"} {
		if !strings.Contains(tails["go-json"], want) {
			t.Errorf("go-json lacks %s:\n%s", want, tails["go-json"])
		}
	}
	if strings.Contains(tails["go-json"], "go-info") || strings.Contains(tails["go-json"], "go-debug") {
		t.Errorf("go-json kept records below WARN:\n%s", tails["go-json"])
	}
	// System level WARN: no platform records.
	if strings.Contains(tails["go-quiet"], "platform.") || strings.Contains(tails["go-quiet"], "START") {
		t.Errorf("platform records past SystemLogLevel WARN:\n%s", tails["go-quiet"])
	}

	// The server's own log, in JSON, names a function's error.
	invoke(t, c, "go-quiet", `{"fail":"error"}`)
	waitFor(t, 5*time.Second, "the function error in the server's log", func() bool { return strings.Contains(s.out.String(), `"msg":"function error"`) })
	for _, line := range strings.Split(strings.TrimSpace(s.out.String()), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] == nil || rec["level"] == nil {
			t.Errorf("not a JSON log record: %q", line)
		}
	}

	// stratus logs: times and request ids; by request id and level.
	env := append(os.Environ(), "STRATUS_ENDPOINT="+s.Endpoint, "STRATUS_DATA_DIR="+s.dataDir)
	stratus := func(args ...string) string {
		cmd := exec.Command(stratusBin, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("stratus %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	second, _ := invokeTail(t, c, "node-text", `{"mark":"m2"}`)
	_ = second
	waitFor(t, 5*time.Second, "two invocations in the log", func() bool { return strings.Count(stratus("logs", "node-text"), "REPORT RequestId") == 2 })
	line := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\t(\S+)\t`)
	for _, l := range strings.Split(strings.TrimSpace(stratus("logs", "node-text", "--request-id", ids["node-text"])), "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil || m[1] != ids["node-text"] || strings.Contains(l, "m2") {
			t.Errorf("stratus logs --request-id: %q", l)
		}
	}
	errs := strings.TrimSpace(stratus("logs", "node-text", "--level", "ERROR"))
	if n := strings.Count(errs, "\n") + 1; n != 2 || !strings.Contains(errs, "error-line m1") || !strings.Contains(errs, "error-line m2") {
		t.Errorf("stratus logs --level ERROR:\n%s", errs)
	}
}

// lastRequestID is the request id of the last REPORT (or platform.report)
// of a log tail.
func (s *server) lastRequestID(t *testing.T, tail string) string {
	t.Helper()
	if m := regexp.MustCompile(`(?:RequestId: |"requestId":")([0-9a-f-]{36})`).FindAllStringSubmatch(tail, -1); len(m) > 0 {
		return m[len(m)-1][1]
	}
	return ""
}

// TestCloudWatchLogs reads function logs through the CloudWatch Logs API
// with the AWS CLI v2 (describe, get, filter, and tail --follow) and
// boto3 (filter with a JSON pattern, retention).
func TestCloudWatchLogs(t *testing.T) {
	cliV2 := "/usr/bin/aws"
	if _, err := os.Stat(cliV2); err != nil {
		t.Fatal("Debian's AWS CLI v2 (/usr/bin/aws) is required; .ci/run installs it")
	}
	s := startServer(t, "")
	ctx := context.Background()
	c := s.lambda()
	if _, err := c.CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String("cw"), Runtime: "nodejs20.x", Handler: aws.String("index.handler"),
		Role: aws.String("arn:aws:iam::000000000000:role/test"), Code: &types.FunctionCode{ZipFile: makeZip(t, map[string][]byte{"index.mjs": []byte(logNode)})},
		LoggingConfig: &types.LoggingConfig{LogFormat: types.LogFormatJson}}); err != nil {
		t.Fatal(err)
	}
	createFunction(t, c, "cw-other", goZip(t), fnOpts{})
	invoke(t, c, "cw", `{"mark":"first"}`)
	invoke(t, c, "cw-other", `{}`)
	dir := t.TempDir()
	env := s.clientEnv(dir)
	cli := func(args ...string) string {
		t.Helper()
		out, err := runCmd(t, env, cliV2, append([]string{"--endpoint-url", s.Endpoint, "--region", "us-east-1", "--output", "json", "logs"}, args...)...)
		if err != nil {
			t.Fatalf("aws logs %v: %v\n%s", args, err, out)
		}
		return out
	}
	var groups struct {
		LogGroups []struct{ LogGroupName, Arn string }
	}
	if err := json.Unmarshal([]byte(cli("describe-log-groups", "--log-group-name-prefix", "/aws/lambda/cw")), &groups); err != nil || len(groups.LogGroups) != 2 ||
		groups.LogGroups[0].LogGroupName != "/aws/lambda/cw" || groups.LogGroups[1].LogGroupName != "/aws/lambda/cw-other" {
		t.Fatalf("describe-log-groups: %v %+v", err, groups)
	}
	var streams struct {
		LogStreams []struct {
			LogStreamName       string
			FirstEventTimestamp int64
			LastEventTimestamp  int64
		}
	}
	waitFor(t, 5*time.Second, "a log stream", func() bool {
		_ = json.Unmarshal([]byte(cli("describe-log-streams", "--log-group-name", "/aws/lambda/cw")), &streams)
		return len(streams.LogStreams) == 1
	})
	st := streams.LogStreams[0]
	if !regexp.MustCompile(`^\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}$`).MatchString(st.LogStreamName) || st.FirstEventTimestamp == 0 || st.LastEventTimestamp < st.FirstEventTimestamp {
		t.Errorf("log stream %+v", st)
	}
	var events struct {
		Events []struct {
			Timestamp int64
			Message   string
		}
		NextForwardToken string
	}
	if err := json.Unmarshal([]byte(cli("get-log-events", "--log-group-name", "/aws/lambda/cw", "--log-stream-name", st.LogStreamName, "--start-from-head")), &events); err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, e := range events.Events {
		var rec struct{ Type, Message string }
		_ = json.Unmarshal([]byte(e.Message), &rec)
		msgs = append(msgs, rec.Type+rec.Message)
		if e.Timestamp < st.FirstEventTimestamp || e.Timestamp > st.LastEventTimestamp {
			t.Errorf("event time %d outside the stream's %d..%d", e.Timestamp, st.FirstEventTimestamp, st.LastEventTimestamp)
		}
	}
	if want := "platform.start,info-line first,warn-line first,error-line first,platform.report"; strings.Join(msgs, ",") != want {
		t.Errorf("get-log-events: %v, want %s", msgs, want)
	}
	var filtered struct {
		Events []struct{ Message, LogStreamName, EventId string }
	}
	if err := json.Unmarshal([]byte(cli("filter-log-events", "--log-group-name", "/aws/lambda/cw", "--filter-pattern", `{ $.level = "ERROR" }`)), &filtered); err != nil ||
		len(filtered.Events) != 1 || !strings.Contains(filtered.Events[0].Message, "error-line first") || filtered.Events[0].LogStreamName != st.LogStreamName || filtered.Events[0].EventId == "" {
		t.Errorf("filter-log-events JSON pattern: %v %+v", err, filtered)
	}
	if err := json.Unmarshal([]byte(cli("filter-log-events", "--log-group-name", "/aws/lambda/cw", "--filter-pattern", `?warn-line ?nothing`)), &filtered); err != nil || len(filtered.Events) != 1 {
		t.Errorf("filter-log-events term pattern: %v %+v", err, filtered)
	}
	if out, err := runCmd(t, env, cliV2, "--endpoint-url", s.Endpoint, "--region", "us-east-1", "logs", "describe-log-streams", "--log-group-name", "/aws/lambda/nope"); err == nil || !strings.Contains(out, "ResourceNotFoundException") {
		t.Errorf("a log group that does not exist: %v %s", err, out)
	}

	// aws logs tail --follow sees a new invocation's lines.
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tail := exec.CommandContext(tctx, cliV2, "--endpoint-url", s.Endpoint, "--region", "us-east-1", "logs", "tail", "/aws/lambda/cw", "--follow", "--since", "5m", "--format", "short")
	tail.Env = env
	var followed lockedBuffer
	tail.Stdout, tail.Stderr = &followed, &followed
	if err := tail.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "tail showing the first invocation", func() bool { return strings.Contains(followed.String(), "error-line first") })
	invoke(t, c, "cw", `{"mark":"followed"}`)
	waitFor(t, 30*time.Second, "tail --follow showing the new invocation", func() bool { return strings.Contains(followed.String(), "error-line followed") })
	cancel()
	_ = tail.Wait()
	if n := strings.Count(followed.String(), "error-line first"); n != 1 {
		t.Errorf("tail printed the first invocation %d times:\n%s", n, followed.String())
	}

	// boto3: retention, and filter with a start time.
	script := filepath.Join(dir, "logs.py")
	if err := os.WriteFile(script, []byte(`import boto3, sys, time
logs = boto3.client("logs", endpoint_url=sys.argv[1], region_name="us-east-1")
logs.put_retention_policy(logGroupName="/aws/lambda/cw", retentionInDays=7)
g = logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/cw")["logGroups"][0]
assert g["retentionInDays"] == 7, g
try:
    logs.put_retention_policy(logGroupName="/aws/lambda/cw", retentionInDays=8)
    raise SystemExit("retention 8 accepted")
except logs.exceptions.InvalidParameterException:
    pass
evs = logs.filter_log_events(logGroupName="/aws/lambda/cw", filterPattern="followed", startTime=int(time.time() * 1000) - 600000)["events"]
assert len(evs) == 3, evs
logs.delete_retention_policy(logGroupName="/aws/lambda/cw")
assert "retentionInDays" not in logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/cw")["logGroups"][0]
print("boto3 logs ok")
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runCmd(t, env, boto3Python(t), script, s.Endpoint); err != nil || !strings.Contains(out, "boto3 logs ok") {
		t.Errorf("boto3: %v\n%s", err, out)
	}
}
