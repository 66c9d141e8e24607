package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

type errorDoc struct {
	ErrorType    string   `json:"errorType"`
	ErrorMessage string   `json:"errorMessage"`
	Trace        []string `json:"trace"`
	StackTrace   []string `json:"stackTrace"`
}

func invokeTail(t *testing.T, c *lambda.Client, name, payload string) (*lambda.InvokeOutput, string) {
	t.Helper()
	out, err := c.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String(name), Payload: []byte(payload), LogType: types.LogTypeTail})
	if err != nil {
		t.Fatalf("invoke %s: %v", name, err)
	}
	tail, _ := base64.StdEncoding.DecodeString(aws.ToString(out.LogResult))
	return out, string(tail)
}

func TestNodeRuntime(t *testing.T) {
	s := startServer(t, "")
	c := s.lambda()
	createFunction(t, c, "node-async", nodeZip(t), fnOpts{runtime: "nodejs20.x", handler: "index.handler", memory: 256})
	createFunction(t, c, "node-cb", nodeZip(t), fnOpts{runtime: "nodejs20.x", handler: "callback.handler"})
	createFunction(t, c, "node-bad", makeZip(t, map[string][]byte{"index.js": []byte("exports.other = 1;")}), fnOpts{runtime: "nodejs20.x", handler: "index.handler"})

	out, tail := invokeTail(t, c, "node-async", `{"name":"node"}`)
	var r struct {
		Message     string `json:"message"`
		RequestID   string `json:"requestId"`
		Function    string `json:"function"`
		Memory      string `json:"memoryLimitInMB"`
		RemainingMs int64  `json:"remainingMs"`
	}
	if err := json.Unmarshal(out.Payload, &r); err != nil {
		t.Fatalf("%s: %v", out.Payload, err)
	}
	if r.Message != "hello, node" || r.Function != "node-async" || r.Memory != "256" || r.RequestID == "" || r.RemainingMs <= 0 || r.RemainingMs > 3000 {
		t.Errorf("async handler reply %+v", r)
	}
	if !strings.Contains(tail, r.RequestID+"\tINFO\tevent {\"name\":\"node\"}") {
		t.Errorf("console.log not in the log with the request id:\n%s", tail)
	}

	out, tail = invokeTail(t, c, "node-cb", `{"name":"cb"}`)
	if !strings.Contains(string(out.Payload), `"style":"callback"`) || !strings.Contains(tail, "callback style") {
		t.Errorf("callback handler: %s\n%s", out.Payload, tail)
	}

	for _, tc := range []struct{ fn, payload, errType string }{
		{"node-async", `{"fail":"type"}`, "TypeError"},
		{"node-async", `{"fail":"reject"}`, "Error"},
		{"node-cb", `{"fail":true}`, "RangeError"},
	} {
		out, _ := invokeTail(t, c, tc.fn, tc.payload)
		var doc errorDoc
		_ = json.Unmarshal(out.Payload, &doc)
		if aws.ToString(out.FunctionError) != "Unhandled" || doc.ErrorType != tc.errType || len(doc.Trace) == 0 {
			t.Errorf("%s %s: function error %v, doc %s", tc.fn, tc.payload, out.FunctionError, out.Payload)
		}
	}

	out, _ = invokeTail(t, c, "node-bad", `{}`)
	var doc errorDoc
	_ = json.Unmarshal(out.Payload, &doc)
	if aws.ToString(out.FunctionError) != "Unhandled" || doc.ErrorType != "Runtime.HandlerNotFound" {
		t.Errorf("missing export: %v %s", out.FunctionError, out.Payload)
	}
}

func TestPythonRuntime(t *testing.T) {
	s := startServer(t, "")
	c := s.lambda()
	createFunction(t, c, "py", pythonZip(t), fnOpts{runtime: "python3.11", handler: "lambda_function.lambda_handler"})
	createFunction(t, c, "py-pkg", makeZip(t, map[string][]byte{
		"pkg/__init__.py": nil,
		"pkg/app.py":      []byte("import os\ndef main(event, context):\n    return {'task_root': os.environ['LAMBDA_TASK_ROOT'], 'arn': context.invoked_function_arn}\n"),
	}), fnOpts{runtime: "python3.11", handler: "pkg/app.main"})
	createFunction(t, c, "py-broken", makeZip(t, map[string][]byte{"app.py": []byte("import not_a_module\n")}), fnOpts{runtime: "python3.11", handler: "app.handler"})
	createFunction(t, c, "py-host", makeZip(t, map[string][]byte{"app.py": []byte("import boto3\nimport requests\ndef handler(e, c):\n    return 'host packages seen'\n")}), fnOpts{runtime: "python3.11", handler: "app.handler"})
	createFunction(t, c, "py-syntax", makeZip(t, map[string][]byte{"app.py": []byte("def handler(:\n    pass\n")}), fnOpts{runtime: "python3.11", handler: "app.handler"})
	createFunction(t, c, "py-log", makeZip(t, map[string][]byte{"app.py": []byte("import logging\nlogger = logging.getLogger()\nlogger.setLevel(logging.INFO)\n" +
		"def handler(event, context):\n    logger.info('info line\\nsecond')\n    logging.debug('not shown')\n    return context.aws_request_id\n")}), fnOpts{runtime: "python3.11", handler: "app.handler"})

	out, tail := invokeTail(t, c, "py", `{"name":"py"}`)
	var r struct {
		Message     string `json:"message"`
		RequestID   string `json:"requestId"`
		Function    string `json:"function"`
		Memory      int    `json:"memoryLimitInMB"`
		RemainingMs int64  `json:"remainingMs"`
	}
	if err := json.Unmarshal(out.Payload, &r); err != nil {
		t.Fatalf("%s: %v", out.Payload, err)
	}
	if r.Message != "hello, py" || r.Function != "py" || r.Memory != 128 || r.RequestID == "" || r.RemainingMs <= 0 {
		t.Errorf("reply %+v", r)
	}
	if !strings.Contains(tail, "event {'name': 'py'}") {
		t.Errorf("print output not in the log:\n%s", tail)
	}

	out, tail = invokeTail(t, c, "py", `{"fail":"zero"}`)
	var doc errorDoc
	_ = json.Unmarshal(out.Payload, &doc)
	if aws.ToString(out.FunctionError) != "Unhandled" || doc.ErrorType != "ZeroDivisionError" || len(doc.StackTrace) == 0 || doc.ErrorMessage != "division by zero" {
		t.Errorf("exception: %s", out.Payload)
	}
	if !strings.Contains(tail, "ZeroDivisionError") {
		t.Errorf("exception not logged:\n%s", tail)
	}

	out = invoke(t, c, "py-pkg", `{}`)
	if !strings.Contains(string(out.Payload), "arn:aws:lambda:us-east-1:000000000000:function:py-pkg") {
		t.Errorf("package handler: %s", out.Payload)
	}

	out, tail = invokeTail(t, c, "py-broken", `{}`)
	doc = errorDoc{}
	_ = json.Unmarshal(out.Payload, &doc)
	if aws.ToString(out.FunctionError) != "Unhandled" || doc.ErrorType != "Runtime.ImportModuleError" {
		t.Errorf("import error: %s", out.Payload)
	}
	if !strings.Contains(tail, "INIT_REPORT") || !strings.Contains(tail, "not_a_module") {
		t.Errorf("init failure not in the log:\n%s", tail)
	}

	out, _ = invokeTail(t, c, "py-syntax", `{}`)
	doc = errorDoc{}
	_ = json.Unmarshal(out.Payload, &doc)
	if doc.ErrorType != "Runtime.UserCodeSyntaxError" || !strings.HasPrefix(doc.ErrorMessage, "Syntax error in module 'app'") ||
		strings.Contains(string(out.Payload), "bootstrap.py") || strings.Contains(string(out.Payload), "importlib") {
		t.Errorf("a syntax error: %s", out.Payload)
	}

	// The host's site-packages are not the function's; the SDK is.
	out, _ = invokeTail(t, c, "py-host", `{}`)
	doc = errorDoc{}
	_ = json.Unmarshal(out.Payload, &doc)
	if doc.ErrorType != "Runtime.ImportModuleError" || !strings.Contains(doc.ErrorMessage, "requests") {
		t.Errorf("a package the host has, not bundled on Lambda: %s", out.Payload)
	}

	// logging as Lambda's runtime sets it up: level, time, request id.
	out, tail = invokeTail(t, c, "py-log", `{}`)
	var id string
	_ = json.Unmarshal(out.Payload, &id)
	if !regexp.MustCompile(`\[INFO\]\t\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\t`+regexp.QuoteMeta(id)+`\tinfo line\rsecond`).MatchString(tail) || strings.Contains(tail, "not shown") {
		t.Errorf("logging output:\n%q", tail)
	}
}
