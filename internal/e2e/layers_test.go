package e2e

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	ltypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

const layerUser = `
import os, subprocess
import greeting

def handler(event, context):
    out = {"greeting": greeting.hello("layer"), "opt": sorted(os.listdir("/opt")),
           "tool": subprocess.run(["tool"], capture_output=True, text=True).stdout.strip()}
    try:
        open("/opt/python/new.py", "w").write("x")
        out["write"] = "written"
    except OSError as e:
        out["write"] = e.strerror
    return out
`

// TestLayers: layers published (versions numbered, immutable), listed,
// fetched by ARN, shared by policy and deleted; functions with layers see
// them merged in order under /opt, read-only, on Lambda's paths for
// Python, Node.js and executables; a function keeps a layer version that
// is deleted; the limits hold; a layer's link cannot make a later layer's
// file land outside /opt.
func TestLayers(t *testing.T) {
	s := startServer(t, "")
	ctx := context.Background()
	c := s.lambda()
	publish := func(name string, entries []zipEntry, runtimes ...string) *lambda.PublishLayerVersionOutput {
		t.Helper()
		out, err := c.PublishLayerVersion(ctx, &lambda.PublishLayerVersionInput{LayerName: aws.String(name), Description: aws.String("test layer"),
			Content: &ltypes.LayerVersionContentInput{ZipFile: zipOf(t, entries)}, CompatibleRuntimes: rts(runtimes)})
		if err != nil {
			t.Fatalf("publish %s: %v", name, err)
		}
		return out
	}
	tool := zipEntry{"bin/tool", 0o755, []byte("#!/bin/sh\necho tool from a layer\n")}
	v1 := publish("pylib", []zipEntry{{"python/greeting.py", 0o644, []byte("def hello(n):\n    return 'hello from v1, ' + n\n")}, tool}, "python3.11")
	v2 := publish("pylib", []zipEntry{{"python/greeting.py", 0o644, []byte("def hello(n):\n    return 'hello from v2, ' + n\n")}})
	if aws.ToInt64(&v1.Version) != 1 || v2.Version != 2 || !strings.HasSuffix(aws.ToString(v2.LayerVersionArn), ":layer:pylib:2") || v2.Content == nil || v2.Content.CodeSize == 0 {
		t.Fatalf("versions: %+v %+v", v1, v2)
	}
	over := publish("override", []zipEntry{{"python/greeting.py", 0o644, []byte("def hello(n):\n    return 'hello from the later layer, ' + n\n")}})
	node := publish("nodelib", []zipEntry{{"nodejs/node_modules/shout/index.js", 0o644, []byte("module.exports = (s) => s.toUpperCase() + '!';\n")}})

	// A Python function on two layers: the later one's file wins.
	createFunction(t, c, "py-layers", makeZip(t, map[string][]byte{"app.py": []byte(layerUser)}), fnOpts{runtime: "python3.11", handler: "app.handler"})
	if _, err := c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("py-layers"),
		Layers: []string{aws.ToString(v1.LayerVersionArn), aws.ToString(over.LayerVersionArn)}}); err != nil {
		t.Fatal(err)
	}
	got, _ := call(t, c, "py-layers", map[string]any{})
	if got["greeting"] != "hello from the later layer, layer" || got["tool"] != "tool from a layer" || got["write"] == "written" {
		t.Errorf("a function on layers: %v", got)
	}
	cfg, err := c.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("py-layers")})
	if err != nil || len(cfg.Layers) != 2 || aws.ToString(cfg.Layers[0].Arn) != aws.ToString(v1.LayerVersionArn) {
		t.Errorf("configuration's layers: %+v %v", cfg, err)
	}

	// Node.js finds a layer's modules on NODE_PATH.
	createFunction(t, c, "node-layers", makeZip(t, map[string][]byte{"index.js": []byte("const shout = require('shout');\nexports.handler = async (e) => shout(e.word);\n")}),
		fnOpts{runtime: "nodejs20.x", handler: "index.handler"})
	if _, err := c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("node-layers"), Layers: []string{aws.ToString(node.LayerVersionArn)}}); err != nil {
		t.Fatal(err)
	}
	if out := invoke(t, c, "node-layers", `{"word":"layers"}`); string(out.Payload) != `"LAYERS!"` {
		t.Errorf("a Node.js module from a layer: %s", out.Payload)
	}

	// Reading and sharing.
	byARN, err := c.GetLayerVersionByArn(ctx, &lambda.GetLayerVersionByArnInput{Arn: v1.LayerVersionArn})
	if err != nil || byARN.Version != 1 || byARN.Content == nil || !strings.Contains(aws.ToString(byARN.Content.Location), "/stratus/v1/code/layer-") {
		t.Errorf("get by ARN: %+v %v", byARN, err)
	} else if resp, err := plainClient.Get(aws.ToString(byARN.Content.Location)); err != nil || resp.StatusCode != 200 {
		t.Errorf("the layer's content link: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	layers, err := c.ListLayers(ctx, &lambda.ListLayersInput{})
	if err != nil || len(layers.Layers) != 3 {
		t.Errorf("list layers: %+v %v", layers, err)
	}
	for _, l := range layers.Layers {
		if aws.ToString(l.LayerName) == "pylib" && l.LatestMatchingVersion.Version != 2 {
			t.Errorf("the latest pylib: %d", l.LatestMatchingVersion.Version)
		}
	}
	vers, err := c.ListLayerVersions(ctx, &lambda.ListLayerVersionsInput{LayerName: aws.String("pylib"), CompatibleRuntime: "python3.11"})
	if err != nil || len(vers.LayerVersions) != 1 || vers.LayerVersions[0].Version != 1 {
		t.Errorf("versions compatible with python3.11: %+v %v", vers, err)
	}
	if _, err := c.AddLayerVersionPermission(ctx, &lambda.AddLayerVersionPermissionInput{LayerName: aws.String("pylib"), VersionNumber: aws.Int64(2),
		StatementId: aws.String("everyone"), Action: aws.String("lambda:GetLayerVersion"), Principal: aws.String("*")}); err != nil {
		t.Fatal(err)
	}
	pol, err := c.GetLayerVersionPolicy(ctx, &lambda.GetLayerVersionPolicyInput{LayerName: aws.String("pylib"), VersionNumber: aws.Int64(2)})
	if err != nil || !strings.Contains(aws.ToString(pol.Policy), `"Sid":"everyone"`) {
		t.Errorf("layer policy: %+v %v", pol, err)
	}
	if _, err := c.RemoveLayerVersionPermission(ctx, &lambda.RemoveLayerVersionPermissionInput{LayerName: aws.String("pylib"), VersionNumber: aws.Int64(2), StatementId: aws.String("everyone")}); err != nil {
		t.Error(err)
	}

	// A deleted version stays with the function that uses it.
	if _, err := c.DeleteLayerVersion(ctx, &lambda.DeleteLayerVersionInput{LayerName: aws.String("pylib"), VersionNumber: aws.Int64(1)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetLayerVersion(ctx, &lambda.GetLayerVersionInput{LayerName: aws.String("pylib"), VersionNumber: aws.Int64(1)}); errorCode(err) != "ResourceNotFoundException" {
		t.Errorf("a deleted version: %v", err)
	}
	if _, err := c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("py-layers"), Description: aws.String("a new instance")}); err != nil {
		t.Fatal(err)
	}
	if got, _ := call(t, c, "py-layers", map[string]any{}); got["tool"] != "tool from a layer" {
		t.Errorf("after its layer version was deleted: %v", got)
	}
	// And a version outlives the function that used it.
	if _, err := c.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("node-layers")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetLayerVersion(ctx, &lambda.GetLayerVersionInput{LayerName: aws.String("nodelib"), VersionNumber: aws.Int64(1)}); err != nil {
		t.Errorf("a layer after its function's deletion: %v", err)
	}

	// Limits.
	six := []string{}
	for range 6 {
		six = append(six, aws.ToString(v2.LayerVersionArn))
	}
	_, err = c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("py-layers"), Layers: six})
	if errorCode(err) != "InvalidParameterValueException" {
		t.Errorf("six layers: %v", err)
	}
	_, err = c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("py-layers"),
		Layers: []string{"arn:aws:lambda:us-east-1:000000000000:layer:nope:1"}})
	if errorCode(err) != "InvalidParameterValueException" {
		t.Errorf("a layer that does not exist: %v", err)
	}

	// A link in one layer, a file under it in the next: the file replaces
	// the link inside /opt and nothing is written where it pointed.
	host := t.TempDir()
	evil, err := c.PublishLayerVersion(ctx, &lambda.PublishLayerVersionInput{LayerName: aws.String("evil"),
		Content: &ltypes.LayerVersionContentInput{ZipFile: zipOf(t, []zipEntry{{"python/escape", os.ModeSymlink | 0o777, []byte(host)}})}})
	t.Logf("a layer with a link out of its package: %v", err)
	if err == nil {
		writer := publish("writer", []zipEntry{{"python/escape/pwned", 0o644, []byte("written through a link")}})
		createFunction(t, c, "py-evil", makeZip(t, map[string][]byte{"app.py": []byte("import os\ndef handler(e, c):\n    return sorted(os.listdir('/opt/python/escape'))\n")}),
			fnOpts{runtime: "python3.11", handler: "app.handler"})
		if _, err := c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("py-evil"),
			Layers: []string{aws.ToString(evil.LayerVersionArn), aws.ToString(writer.LayerVersionArn)}}); err != nil {
			t.Fatal(err)
		}
		out := invoke(t, c, "py-evil", `{}`)
		var listing []string
		_ = json.Unmarshal(out.Payload, &listing)
		if len(listing) != 1 || listing[0] != "pwned" {
			t.Errorf("the later layer's folder: %s", out.Payload)
		}
		if entries, _ := os.ReadDir(host); len(entries) != 0 {
			t.Errorf("a layer's file was written through an earlier layer's link, outside /opt: %v", entries)
		}
	}
}

func rts(names []string) []ltypes.Runtime {
	var out []ltypes.Runtime
	for _, n := range names {
		out = append(out, ltypes.Runtime(n))
	}
	return out
}
