package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// absentPython is a Python runtime this host has no interpreter for.
func absentPython(t *testing.T) string {
	t.Helper()
	for _, rt := range []string{"python3.9", "python3.10", "python3.12", "python3.13", "python3.14"} {
		if _, err := exec.LookPath(rt); err != nil {
			return rt
		}
	}
	t.Fatal("every Python runtime has an interpreter here: the test needs one that has not")
	return ""
}

// TestRuntimeInterpreters: a function runs on the interpreter its runtime
// names. A runtime with none here is refused at CreateFunction and
// UpdateFunctionConfiguration with what is installed; the operator's
// --runtime-map runs it on another. Node.js 24 refuses callback handlers
// at init; Node.js functions get the AWS SDK for JavaScript v3 from the
// operator's folder, for require and import alike, without bundling it.
func TestRuntimeInterpreters(t *testing.T) {
	ctx := context.Background()
	missing := absentPython(t)
	plain := startServer(t, "")
	c := plain.lambda()
	_, err := c.CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String("py-missing"), Runtime: types.Runtime(missing), Handler: aws.String("lambda_function.lambda_handler"),
		Role: aws.String("arn:aws:iam::000000000000:role/test"), Code: &types.FunctionCode{ZipFile: pythonZip(t)}})
	if errorCode(err) != "InvalidParameterValueException" || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "python3.11") || !strings.Contains(err.Error(), "--runtime-map") {
		t.Errorf("CreateFunction %s: %v", missing, err)
	}
	createFunction(t, c, "py-here", pythonZip(t), fnOpts{runtime: "python3.11", handler: "lambda_function.lambda_handler"})
	if _, err := c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("py-here"), Runtime: types.Runtime(missing)}); errorCode(err) != "InvalidParameterValueException" {
		t.Errorf("UpdateFunctionConfiguration to %s: %v", missing, err)
	}
	if _, err := c.CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String("node24"), Runtime: "nodejs24.x", Handler: aws.String("index.handler"),
		Role: aws.String("arn:aws:iam::000000000000:role/test"), Code: &types.FunctionCode{ZipFile: nodeZip(t)}}); errorCode(err) != "InvalidParameterValueException" {
		t.Errorf("nodejs24.x without node 24: %v", err)
	}

	js := filepath.Join(repoRoot, "internal", "e2e", "testdata", "js")
	if _, err := os.Stat(filepath.Join(js, "node_modules", "@aws-sdk", "client-sqs")); err != nil {
		t.Fatal("the JavaScript SDK is required; .ci/run installs it (npm ci in internal/e2e/testdata/js)")
	}
	s := startServer(t, "", "--runtime-map", "nodejs24.x=nodejs20.x,"+missing+"=python3.11", "--node-sdk", js)
	if out := s.out.String(); !strings.Contains(out, "Node.js functions get the AWS SDK for JavaScript 3.") || !strings.Contains(out, "nodejs24.x (20.") {
		t.Errorf("the start-up log does not say which SDK and interpreters functions get:\n%s", out)
	}
	c = s.lambda()
	createFunction(t, c, "py-mapped", makeZip(t, map[string][]byte{"app.py": []byte("import sys\ndef handler(e, c):\n    return '%d.%d' % sys.version_info[:2]\n")}),
		fnOpts{runtime: missing, handler: "app.handler"})
	if out := invoke(t, c, "py-mapped", `{}`); string(out.Payload) != `"3.11"` {
		t.Errorf("%s mapped to python3.11 ran on %s", missing, out.Payload)
	}
	createFunction(t, c, "node24-cb", makeZip(t, map[string][]byte{"index.js": []byte("exports.handler = (event, context, callback) => callback(null, 'ran');\n")}),
		fnOpts{runtime: "nodejs24.x", handler: "index.handler"})
	out := invoke(t, c, "node24-cb", `{}`)
	var doc errorDoc
	_ = json.Unmarshal(out.Payload, &doc)
	if aws.ToString(out.FunctionError) != "Unhandled" || doc.ErrorType != "Runtime.CallbackHandlerDeprecated" {
		t.Errorf("callback handler on nodejs24.x: %v %s", out.FunctionError, out.Payload)
	}
	createFunction(t, c, "node20-cb", makeZip(t, map[string][]byte{"index.js": []byte("exports.handler = (event, context, callback) => callback(null, 'ran');\n")}),
		fnOpts{runtime: "nodejs20.x", handler: "index.handler"})
	if out := invoke(t, c, "node20-cb", `{}`); out.FunctionError != nil || string(out.Payload) != `"ran"` {
		t.Errorf("callback handler on nodejs20.x: %s", out.Payload)
	}

	// The SDK, not bundled: an ES module imports it and sends a message
	// with the function's role; a CommonJS module requires it.
	q := s.sqs()
	url := createQueue(t, q, "from-node", nil)
	createFunction(t, c, "node-sdk", makeZip(t, map[string][]byte{
		"index.mjs": []byte(`import { SQSClient, SendMessageCommand } from "@aws-sdk/client-sqs";
const sqs = new SQSClient({});
export const handler = async (event) => {
  const out = await sqs.send(new SendMessageCommand({ QueueUrl: event.queue, MessageBody: "from node " + process.version }));
  return out.MessageId;
};
`),
		"cjs.js": []byte(`const { SQSClient } = require("@aws-sdk/client-sqs");
exports.handler = async () => typeof SQSClient;
`),
	}), fnOpts{runtime: "nodejs24.x", handler: "index.handler", timeout: 30})
	out = invoke(t, c, "node-sdk", `{"queue":"`+url+`"}`)
	if out.FunctionError != nil {
		t.Fatalf("ESM import of @aws-sdk/client-sqs: %s", out.Payload)
	}
	msgs := receive(t, q, url, 1, 5)
	if len(msgs) != 1 || !strings.HasPrefix(aws.ToString(msgs[0].Body), "from node v20.") || `"`+aws.ToString(msgs[0].MessageId)+`"` != string(out.Payload) {
		t.Errorf("message from the function: %+v (answer %s)", msgs, out.Payload)
	}
	if _, err := c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("node-sdk"), Handler: aws.String("cjs.handler")}); err != nil {
		t.Fatal(err)
	}
	if out := invoke(t, c, "node-sdk", `{}`); string(out.Payload) != `"function"` {
		t.Errorf("require of @aws-sdk/client-sqs: %s", out.Payload)
	}
	// Without the folder, the SDK is not there.
	createFunction(t, plain.lambda(), "node-nosdk", makeZip(t, map[string][]byte{"index.mjs": []byte(`import { SQSClient } from "@aws-sdk/client-sqs";
export const handler = async () => typeof SQSClient;
`)}), fnOpts{runtime: "nodejs20.x", handler: "index.handler"})
	out = invoke(t, plain.lambda(), "node-nosdk", `{}`)
	doc = errorDoc{}
	_ = json.Unmarshal(out.Payload, &doc)
	if out.FunctionError == nil || doc.ErrorType != "Runtime.ImportModuleError" {
		t.Errorf("the SDK was found with no SDK folder: %s", out.Payload)
	}
}
