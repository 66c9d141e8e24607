package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/lambda"
)

// TestPrewarmedSandboxes: cold starts of Node.js and Python functions take
// sandboxes whose interpreter and runtime client were started ahead, and
// each then is the function's own: its code, environment, /tmp and memory
// limit, and never another function's.
func TestPrewarmedSandboxes(t *testing.T) {
	s := startServer(t, "")
	c := s.lambda()
	py := `import os, json
INSTANCE = os.urandom(8).hex()
def handler(event, context):
    if event.get("alloc"):
        blob = bytearray(event["alloc"] << 20)
        for i in range(0, len(blob), 4096):
            blob[i] = 1
    tmp = sorted(os.listdir("/tmp"))
    open("/tmp/mine-" + os.environ["AWS_LAMBDA_FUNCTION_NAME"], "w").write("x")
    try:
        open("/var/task/written", "w")
        return {"code": "code folder writable"}
    except OSError:
        pass
    return {"code": open("/var/task/marker.txt").read(), "files": sorted(os.listdir("/var/task")),
            "env": os.environ.get("MARK"), "tmp": tmp, "instance": INSTANCE, "cwd": os.getcwd(),
            "memory": os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "key": bool(os.environ.get("AWS_ACCESS_KEY_ID"))}
`
	node := `import fs from "node:fs";
import crypto from "node:crypto";
const instance = crypto.randomUUID();
export const handler = async () => { const tmp = fs.readdirSync("/tmp"); fs.writeFileSync("/tmp/mine", "x"); return { code: fs.readFileSync("/var/task/marker.txt", "utf8"), files: fs.readdirSync("/var/task").sort(),
  env: process.env.MARK ?? null, tmp, instance, cwd: process.cwd(), memory: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE }; };
`
	type answer struct {
		Code, Env, Cwd, Memory, Instance string
		Files, Tmp                       []string
		Key                              bool
	}
	used := func() float64 { return metricValue(t, s, "stratus_prewarmed_sandboxes_used_total") }
	for _, rt := range []struct{ runtime, handler, file, src string }{
		{"python3.11", "app.handler", "app.py", py},
		{"nodejs20.x", "app.handler", "app.mjs", node},
	} {
		t.Run(rt.runtime, func(t *testing.T) {
			name := func(s string) string { return strings.Split(rt.runtime, ".")[0] + "-" + s }
			for _, fn := range []string{"a", "b"} {
				zip := makeZip(t, map[string][]byte{rt.file: []byte(rt.src), "marker.txt": []byte(fn)})
				createFunction(t, c, name(fn), zip, fnOpts{runtime: rt.runtime, handler: rt.handler, memory: 256, env: map[string]string{"MARK": "env-" + fn}})
			}
			call := func(fn, payload string) (answer, *lambda.InvokeOutput) {
				out := invoke(t, c, name(fn), payload)
				var a answer
				if out.FunctionError == nil {
					if err := json.Unmarshal(out.Payload, &a); err != nil {
						t.Fatalf("%s: %s", fn, out.Payload)
					}
				}
				return a, out
			}
			// The first cold start of the runtime is an ordinary one, and
			// leaves a sandbox ready for the next.
			a, _ := call("a", `{}`)
			waitFor(t, 10*time.Second, "a pre-started sandbox", func() bool {
				return metricValue(t, s, "stratus_prewarmed_sandboxes") >= 1
			})
			before := used()
			b, out := call("b", `{}`)
			if out.FunctionError != nil {
				t.Fatalf("b on a pre-started sandbox: %s", out.Payload)
			}
			if used() != before+1 {
				t.Fatal("the cold start did not take the pre-started sandbox")
			}
			if b.Code != "b" || b.Env != "env-b" || b.Memory != "256" || b.Cwd != "/var/task" || b.Instance == a.Instance {
				t.Fatalf("the sandbox is not b's: %+v (a's: %+v)", b, a)
			}
			if len(b.Tmp) != 0 || strings.Join(b.Files, ",") != "app.mjs,marker.txt" && strings.Join(b.Files, ",") != "app.py,marker.txt" {
				t.Fatalf("b sees /tmp %v and /var/task %v", b.Tmp, b.Files)
			}
			// b's instance stays b's: a runs on its own, and b again on b's.
			if a2, _ := call("a", `{}`); a2.Code != "a" || a2.Instance != a.Instance {
				t.Fatalf("a after b: %+v", a2)
			}
			if b2, _ := call("b", `{}`); b2.Code != "b" || b2.Instance != b.Instance || len(b2.Tmp) != 1 {
				t.Fatalf("b's second invocation: %+v", b2)
			}
			// The code is read-only; the memory limit is the function's.
			if rt.runtime == "python3.11" {
				if !b.Key {
					t.Error("no role credentials in a specialised sandbox")
				}
				_, out := call("b", `{"alloc":400}`)
				if out.FunctionError == nil || !strings.Contains(string(out.Payload), "Runtime.OutOfMemory") {
					t.Fatalf("400 MB in a 256 MB function on a pre-started sandbox: %s", out.Payload)
				}
			}
		})
	}
}
