package e2e

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash/crc32"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

func TestControlPlane(t *testing.T) {
	s := startServer(t, "")
	c := s.lambda()
	ctx := context.Background()
	zip := goZip(t)

	created := createFunction(t, c, "cp-go", zip, fnOpts{})
	sum := sha256.Sum256(zip)
	if got, want := aws.ToString(created.CodeSha256), base64.StdEncoding.EncodeToString(sum[:]); got != want {
		t.Errorf("CodeSha256 = %s, want %s", got, want)
	}
	if created.CodeSize != int64(len(zip)) {
		t.Errorf("CodeSize = %d, want %d", created.CodeSize, len(zip))
	}
	if got := aws.ToString(created.FunctionArn); got != "arn:aws:lambda:us-east-1:000000000000:function:cp-go" {
		t.Errorf("FunctionArn = %s", got)
	}
	if aws.ToInt32(created.Timeout) != 3 || aws.ToInt32(created.MemorySize) != 128 || aws.ToInt32(created.EphemeralStorage.Size) != 512 {
		t.Errorf("defaults: timeout %d memory %d tmp %d", aws.ToInt32(created.Timeout), aws.ToInt32(created.MemorySize), aws.ToInt32(created.EphemeralStorage.Size))
	}
	if created.State != types.StateActive || created.LastUpdateStatus != types.LastUpdateStatusSuccessful {
		t.Errorf("State %s LastUpdateStatus %s", created.State, created.LastUpdateStatus)
	}
	if aws.ToString(created.RevisionId) == "" || aws.ToString(created.Version) != "$LATEST" {
		t.Errorf("RevisionId %q Version %q", aws.ToString(created.RevisionId), aws.ToString(created.Version))
	}

	// The SDK's own waiter polls GetFunction for State Active.
	if err := lambda.NewFunctionActiveV2Waiter(c).Wait(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("cp-go")}, 10e9); err != nil {
		t.Fatalf("FunctionActiveV2 waiter: %v", err)
	}

	got, err := c.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("arn:aws:lambda:us-east-1:000000000000:function:cp-go")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(got.Configuration.CodeSha256) != aws.ToString(created.CodeSha256) || got.Code == nil || aws.ToString(got.Code.RepositoryType) != "S3" {
		t.Errorf("GetFunction: %+v", got)
	}
	// The code location serves the zip back.
	if body := getBody(t, aws.ToString(got.Code.Location)); body != string(zip) {
		t.Errorf("code download returned %d bytes, want %d", len(body), len(zip))
	}

	// UpdateFunctionConfiguration, every field the issue names.
	upd, err := c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{
		FunctionName:     aws.String("cp-go"),
		Environment:      &types.Environment{Variables: map[string]string{"GREETING": "hi"}},
		MemorySize:       aws.Int32(256),
		Timeout:          aws.Int32(10),
		Description:      aws.String("updated"),
		EphemeralStorage: &types.EphemeralStorage{Size: aws.Int32(1024)},
		Handler:          aws.String("bootstrap"),
		Runtime:          types.RuntimeProvidedal2,
	})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToInt32(upd.MemorySize) != 256 || aws.ToInt32(upd.Timeout) != 10 || aws.ToString(upd.Description) != "updated" ||
		upd.Environment.Variables["GREETING"] != "hi" || aws.ToInt32(upd.EphemeralStorage.Size) != 1024 || upd.Runtime != types.RuntimeProvidedal2 {
		t.Errorf("update not applied: %+v", upd)
	}
	if aws.ToString(upd.RevisionId) == aws.ToString(created.RevisionId) {
		t.Error("RevisionId unchanged by update")
	}
	// The new configuration reaches new instances.
	out := invoke(t, c, "cp-go", `{"env":"GREETING"}`)
	if !strings.Contains(string(out.Payload), `"envValue":"hi"`) || !strings.Contains(string(out.Payload), `"memoryLimitInMB":256`) {
		t.Errorf("instance does not see the new configuration: %s", out.Payload)
	}

	// A stale RevisionId is refused.
	_, err = c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("cp-go"), Description: aws.String("x"), RevisionId: created.RevisionId})
	if errorCode(err) != "PreconditionFailedException" || httpStatus(err) != 412 {
		t.Errorf("stale revision: %v", err)
	}

	// UpdateFunctionCode changes the code identity, and the new code runs.
	zip2 := makeZip(t, map[string][]byte{"bootstrap": goBootstrap, "extra.txt": []byte("v2")})
	uc, err := c.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{FunctionName: aws.String("cp-go"), ZipFile: zip2, RevisionId: upd.RevisionId})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(uc.CodeSha256) == aws.ToString(created.CodeSha256) || uc.CodeSize != int64(len(zip2)) {
		t.Errorf("code update: sha %s size %d", aws.ToString(uc.CodeSha256), uc.CodeSize)
	}
	invoke(t, c, "cp-go", `{}`)

	// ListFunctions paginates, at most 50 per page and MaxItems honoured.
	for i := range 7 {
		createFunction(t, c, fmt.Sprintf("cp-list-%02d", i), zip, fnOpts{})
	}
	var names []string
	p := lambda.NewListFunctionsPaginator(c, &lambda.ListFunctionsInput{MaxItems: aws.Int32(3)})
	pages := 0
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(page.Functions) > 3 {
			t.Errorf("page of %d functions with MaxItems 3", len(page.Functions))
		}
		for _, f := range page.Functions {
			names = append(names, aws.ToString(f.FunctionName))
		}
	}
	if len(names) != 8 || pages != 3 {
		t.Errorf("listed %d functions in %d pages: %v", len(names), pages, names)
	}

	// Delete; then it is gone.
	if _, err := c.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("cp-go")}); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("cp-go")})
	if errorCode(err) != "ResourceNotFoundException" || httpStatus(err) != 404 {
		t.Errorf("after delete: %v", err)
	}
	_, err = c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("cp-go")})
	if errorCode(err) != "ResourceNotFoundException" {
		t.Errorf("invoke after delete: %v", err)
	}
}

func TestValidationErrors(t *testing.T) {
	s := startServer(t, "")
	c := s.lambda()
	ctx := context.Background()
	zip := goZip(t)
	createFunction(t, c, "exists", zip, fnOpts{})

	base := func() *lambda.CreateFunctionInput {
		return &lambda.CreateFunctionInput{
			FunctionName: aws.String("v-fn"),
			Runtime:      types.RuntimeProvidedal2023,
			Handler:      aws.String("bootstrap"),
			Role:         aws.String("arn:aws:iam::000000000000:role/test"),
			Code:         &types.FunctionCode{ZipFile: zip},
		}
	}
	tests := []struct {
		name   string
		change func(*lambda.CreateFunctionInput)
		code   string
		status int
	}{
		{"bad name", func(in *lambda.CreateFunctionInput) { in.FunctionName = aws.String("no spaces allowed") }, "InvalidParameterValueException", 400},
		{"name too long", func(in *lambda.CreateFunctionInput) { in.FunctionName = aws.String(strings.Repeat("a", 65)) }, "InvalidParameterValueException", 400},
		{"corrupt zip", func(in *lambda.CreateFunctionInput) { in.Code.ZipFile = []byte("this is not a zip") }, "InvalidParameterValueException", 400},
		{"missing bootstrap", func(in *lambda.CreateFunctionInput) {
			in.Code.ZipFile = makeZip(t, map[string][]byte{"main": []byte("x")})
		}, "InvalidParameterValueException", 400},
		{"missing node handler file", func(in *lambda.CreateFunctionInput) {
			in.Runtime, in.Handler = types.RuntimeNodejs20x, aws.String("app.handler")
			in.Code.ZipFile = makeZip(t, map[string][]byte{"index.js": []byte("exports.handler=async()=>1")})
		}, "InvalidParameterValueException", 400},
		{"missing python handler file", func(in *lambda.CreateFunctionInput) {
			in.Runtime, in.Handler = types.RuntimePython311, aws.String("app.handler")
			in.Code.ZipFile = makeZip(t, map[string][]byte{"other.py": []byte("")})
		}, "InvalidParameterValueException", 400},
		{"zip slip", func(in *lambda.CreateFunctionInput) {
			in.Code.ZipFile = makeZip(t, map[string][]byte{"bootstrap": goBootstrap, "../escape": []byte("x")})
		}, "InvalidParameterValueException", 400},
		{"unsupported runtime", func(in *lambda.CreateFunctionInput) { in.Runtime = types.RuntimeJava21 }, "InvalidParameterValueException", 400},
		{"memory too small", func(in *lambda.CreateFunctionInput) { in.MemorySize = aws.Int32(64) }, "InvalidParameterValueException", 400},
		{"memory too large", func(in *lambda.CreateFunctionInput) { in.MemorySize = aws.Int32(10241) }, "InvalidParameterValueException", 400},
		{"timeout too large", func(in *lambda.CreateFunctionInput) { in.Timeout = aws.Int32(901) }, "InvalidParameterValueException", 400},
		{"ephemeral too small", func(in *lambda.CreateFunctionInput) {
			in.EphemeralStorage = &types.EphemeralStorage{Size: aws.Int32(100)}
		}, "InvalidParameterValueException", 400},
		{"reserved env", func(in *lambda.CreateFunctionInput) {
			in.Environment = &types.Environment{Variables: map[string]string{"AWS_REGION": "x"}}
		}, "InvalidParameterValueException", 400},
		{"env over 4 KB", func(in *lambda.CreateFunctionInput) {
			in.Environment = &types.Environment{Variables: map[string]string{"BIG": strings.Repeat("x", 5000)}}
		}, "InvalidParameterValueException", 400},
		{"env value with NUL", func(in *lambda.CreateFunctionInput) {
			in.Environment = &types.Environment{Variables: map[string]string{"SECRET": "a\x00b"}}
		}, "InvalidParameterValueException", 400},
		{"bootstrap links outside", func(in *lambda.CreateFunctionInput) {
			in.Code.ZipFile = linkZip(t, nil, map[string]string{"bootstrap": "/bin/sh"})
		}, "InvalidParameterValueException", 400},
		{"bootstrap links nowhere", func(in *lambda.CreateFunctionInput) {
			in.Code.ZipFile = linkZip(t, nil, map[string]string{"bootstrap": "bin/missing"})
		}, "InvalidParameterValueException", 400},
		{"python handler links outside", func(in *lambda.CreateFunctionInput) {
			in.Runtime, in.Handler = types.RuntimePython311, aws.String("app.handler")
			in.Code.ZipFile = linkZip(t, nil, map[string]string{"app.py": "../../../usr/lib/python3/os.py"})
		}, "InvalidParameterValueException", 400},
		{"file and folder", func(in *lambda.CreateFunctionInput) {
			in.Code.ZipFile = makeZip(t, map[string][]byte{"bootstrap": goBootstrap, "lib": []byte("x"), "lib/a.so": []byte("y")})
		}, "InvalidParameterValueException", 400},
		{"name too long", func(in *lambda.CreateFunctionInput) {
			in.Code.ZipFile = makeZip(t, map[string][]byte{"bootstrap": goBootstrap, strings.Repeat("n", 300): []byte("x")})
		}, "InvalidParameterValueException", 400},
		{"entry below a link", func(in *lambda.CreateFunctionInput) {
			in.Code.ZipFile = linkZip(t, map[string][]byte{"bootstrap": goBootstrap, "d/passwd": []byte("x")}, map[string]string{"d": "/etc"})
		}, "InvalidParameterValueException", 400},
		{"headers lie about sizes", func(in *lambda.CreateFunctionInput) { in.Code.ZipFile = lyingZip(t) }, "InvalidParameterValueException", 400},
		{"duplicate", func(in *lambda.CreateFunctionInput) { in.FunctionName = aws.String("exists") }, "ResourceConflictException", 409},
		{"zip over 50 MB", func(in *lambda.CreateFunctionInput) {
			in.Code.ZipFile = make([]byte, 50*1024*1024+1)
		}, "RequestTooLargeException", 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := base()
			tt.change(in)
			_, err := c.CreateFunction(ctx, in)
			if errorCode(err) != tt.code || httpStatus(err) != tt.status {
				t.Fatalf("got %v (code %q, status %d), want %s %d", err, errorCode(err), httpStatus(err), tt.code, tt.status)
			}
		})
	}

	t.Run("links inside the package work", func(t *testing.T) {
		// As on Lambda, a bootstrap that links to a file of the package runs.
		in := base()
		in.FunctionName = aws.String("linked")
		in.Code.ZipFile = linkZip(t, map[string][]byte{"bin/app": goBootstrap}, map[string]string{"bootstrap": "bin/app", "etc-link": "/etc/hostname"})
		if _, err := c.CreateFunction(ctx, in); err != nil {
			t.Fatal(err)
		}
		out := invoke(t, c, "linked", `{"name":"link"}`)
		if out.FunctionError != nil || !strings.Contains(string(out.Payload), "link") {
			t.Fatalf("invoke through a link: %s", out.Payload)
		}
		// The same refusal on a code update.
		_, err := c.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{FunctionName: aws.String("linked"), ZipFile: linkZip(t, nil, map[string]string{"bootstrap": "/usr/bin/env"})})
		if errorCode(err) != "InvalidParameterValueException" || !strings.Contains(err.Error(), "outside the package") {
			t.Fatalf("update to a bootstrap outside: %v", err)
		}
	})

	t.Run("unzipped over 250 MB", func(t *testing.T) {
		// A zip bomb: 260 MB of zeros compresses to a few hundred KB.
		big := makeZip(t, map[string][]byte{"bootstrap": goBootstrap, "zeros": make([]byte, 260<<20)})
		in := base()
		in.Code.ZipFile = big
		_, err := c.CreateFunction(ctx, in)
		if errorCode(err) != "InvalidParameterValueException" {
			t.Fatalf("got %v", err)
		}
	})

	t.Run("unknown function", func(t *testing.T) {
		for _, call := range []func() error{
			func() error {
				_, err := c.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("nope")})
				return err
			},
			func() error {
				_, err := c.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("nope")})
				return err
			},
			func() error {
				_, err := c.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("nope")})
				return err
			},
			func() error {
				_, err := c.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{FunctionName: aws.String("nope"), ZipFile: zip})
				return err
			},
			func() error {
				_, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("nope")})
				return err
			},
		} {
			if err := call(); errorCode(err) != "ResourceNotFoundException" || httpStatus(err) != 404 {
				t.Errorf("got %v", err)
			}
		}
	})

	t.Run("bad update", func(t *testing.T) {
		_, err := c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("exists"), Timeout: aws.Int32(0)})
		if errorCode(err) != "InvalidParameterValueException" {
			t.Errorf("timeout 0: %v", err)
		}
		// A handler not (yet) in the code is accepted, as on Lambda, and
		// reported when the function runs.
		_, err = c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("exists"), Runtime: types.RuntimePython311, Handler: aws.String("app.handler")})
		if err != nil {
			t.Errorf("a handler the code does not have yet: %v", err)
		}
		out, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("exists")})
		if err != nil || aws.ToString(out.FunctionError) != "Unhandled" || !strings.Contains(string(out.Payload), "Runtime.ImportModuleError") {
			t.Errorf("invoking a handler the code lacks: %v %s", err, out.Payload)
		}
		_, err = c.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{FunctionName: aws.String("exists"), ZipFile: []byte("garbage")})
		if errorCode(err) != "InvalidParameterValueException" {
			t.Errorf("corrupt code update: %v", err)
		}
	})
}

// linkZip is a package of files and symbolic links (name to target).
func linkZip(t testing.TB, files map[string][]byte, links map[string]string) []byte {
	t.Helper()
	var entries []zipEntry
	for name, data := range files {
		entries = append(entries, zipEntry{name, 0o755, data})
	}
	for name, target := range links {
		entries = append(entries, zipEntry{name, os.ModeSymlink | 0o777, []byte(target)})
	}
	return zipOf(t, entries)
}

// lyingZip holds a bootstrap whose header claims fewer bytes than it has.
func lyingZip(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	h := &zip.FileHeader{Name: "bootstrap", Method: zip.Store, CRC32: crc32.ChecksumIEEE(goBootstrap),
		CompressedSize64: uint64(len(goBootstrap)), UncompressedSize64: uint64(len(goBootstrap) / 2)}
	h.SetMode(0o755)
	w, err := zw.CreateRaw(h)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(goBootstrap); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestTags: TagResource, ListTags and UntagResource on a function ARN, as
// Terraform and the CLI call them; tags set at create are listed too.
func TestTags(t *testing.T) {
	s := startServer(t, "")
	c := s.lambda()
	ctx := context.Background()
	out := createFunction(t, c, "tagged", goZip(t), fnOpts{tags: map[string]string{"team": "a"}})
	arn := out.FunctionArn
	if _, err := c.TagResource(ctx, &lambda.TagResourceInput{Resource: arn, Tags: map[string]string{"env": "prod", "team": "b"}}); err != nil {
		t.Fatal(err)
	}
	got, err := c.ListTags(ctx, &lambda.ListTagsInput{Resource: arn})
	if err != nil || len(got.Tags) != 2 || got.Tags["env"] != "prod" || got.Tags["team"] != "b" {
		t.Fatalf("list after tagging: %v %v", err, got.Tags)
	}
	if _, err := c.UntagResource(ctx, &lambda.UntagResourceInput{Resource: arn, TagKeys: []string{"team"}}); err != nil {
		t.Fatal(err)
	}
	fn, err := c.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("tagged")})
	if err != nil || len(fn.Tags) != 1 || fn.Tags["env"] != "prod" {
		t.Fatalf("tags on GetFunction after untagging: %v %v", err, fn.Tags)
	}
	// The function still runs.
	if r := invoke(t, c, "tagged", `{}`); r.FunctionError != nil {
		t.Fatalf("invoke after tagging: %s", r.Payload)
	}
	for _, tc := range []struct {
		arn, code string
	}{
		{"arn:aws:lambda:us-east-1:000000000000:function:nobody", "ResourceNotFoundException"},
		{"arn:aws:sqs:us-east-1:000000000000:q", "InvalidParameterValueException"},
		{*arn + ":1", "InvalidParameterValueException"},
	} {
		if _, err := c.ListTags(ctx, &lambda.ListTagsInput{Resource: aws.String(tc.arn)}); errorCode(err) != tc.code {
			t.Errorf("ListTags %s: %v", tc.arn, err)
		}
	}
	if _, err := c.TagResource(ctx, &lambda.TagResourceInput{Resource: arn, Tags: map[string]string{"stratus:idle-timeout": "soon"}}); errorCode(err) != "InvalidParameterValueException" {
		t.Errorf("a bad idle-timeout tag: %v", err)
	}
}
