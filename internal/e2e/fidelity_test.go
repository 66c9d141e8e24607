package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewayv2"
	agtypes "github.com/aws/aws-sdk-go-v2/service/apigatewayv2/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// TestLambdaFidelity: settings that used to be dropped now work or are
// refused by name: Publish on CreateFunction and UpdateFunctionCode,
// unsupported fields, layers that do not exist, GetFunctionCodeSigningConfig, and
// the X-Forwarded-* headers of HTTP events.
func TestLambdaFidelity(t *testing.T) {
	s := startServer(t, "")
	ctx := context.Background()
	c := s.lambda()
	out, err := c.CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String("pub"), Runtime: "provided.al2023", Handler: aws.String("bootstrap"),
		Role: aws.String("arn:aws:iam::000000000000:role/test"), Code: &types.FunctionCode{ZipFile: goZip(t)}, Publish: true})
	if err != nil || aws.ToString(out.Version) != "1" || !strings.HasSuffix(aws.ToString(out.FunctionArn), ":pub:1") {
		t.Fatalf("CreateFunction with Publish: %v %+v", err, out)
	}
	// New code: unchanged code publishes nothing new, as on Lambda.
	v2 := makeZip(t, map[string][]byte{"bootstrap": goBootstrap, "VERSION": []byte("2")})
	up, err := c.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{FunctionName: aws.String("pub"), ZipFile: v2, Publish: true})
	if err != nil || aws.ToString(up.Version) != "2" {
		t.Fatalf("UpdateFunctionCode with Publish: %v %+v", err, up)
	}
	vs, err := c.ListVersionsByFunction(ctx, &lambda.ListVersionsByFunctionInput{FunctionName: aws.String("pub")})
	if err != nil || len(vs.Versions) != 3 {
		t.Fatalf("versions: %v %+v", err, vs)
	}
	for name, in := range map[string]*lambda.CreateFunctionInput{
		"FileSystemConfigs":    {FileSystemConfigs: []types.FileSystemConfig{{Arn: aws.String("arn:aws:elasticfilesystem:us-east-1:000000000000:access-point/fsap-1"), LocalMountPath: aws.String("/mnt/x")}}},
		"CodeSigningConfigArn": {CodeSigningConfigArn: aws.String("arn:aws:lambda:us-east-1:000000000000:code-signing-config:csc-1")},
	} {
		in.FunctionName, in.Runtime, in.Handler = aws.String("refused"), "provided.al2023", aws.String("bootstrap")
		in.Role, in.Code = aws.String("arn:aws:iam::000000000000:role/test"), &types.FunctionCode{ZipFile: goZip(t)}
		_, err := c.CreateFunction(ctx, in)
		if errorCode(err) != "InvalidParameterValueException" || !strings.Contains(err.Error(), name) {
			t.Errorf("CreateFunction with %s: %v", name, err)
		}
	}
	if _, err := c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("pub"), Layers: []string{"arn:aws:lambda:us-east-1:000000000000:layer:x:1"}}); errorCode(err) != "InvalidParameterValueException" {
		t.Errorf("UpdateFunctionConfiguration with Layers: %v", err)
	}
	if _, err := c.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("refused")}); errorCode(err) != "ResourceNotFoundException" {
		t.Errorf("a refused function exists: %v", err)
	}
	csc, err := c.GetFunctionCodeSigningConfig(ctx, &lambda.GetFunctionCodeSigningConfigInput{FunctionName: aws.String("pub")})
	if err != nil || aws.ToString(csc.FunctionName) != "pub" || aws.ToString(csc.CodeSigningConfigArn) != "" {
		t.Errorf("GetFunctionCodeSigningConfig: %v %+v", err, csc)
	}
	if _, err := c.GetFunctionCodeSigningConfig(ctx, &lambda.GetFunctionCodeSigningConfigInput{FunctionName: aws.String("nope")}); errorCode(err) != "ResourceNotFoundException" {
		t.Errorf("GetFunctionCodeSigningConfig of no function: %v", err)
	}
	// Every answer names a request id, errors too.
	for _, path := range []string{"/2015-03-31/functions/pub", "/2015-03-31/functions/nope", "/2016-08-19/account-settings"} {
		resp, err := http.Get(s.Endpoint + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if len(resp.Header.Get("X-Amzn-RequestId")) < 32 {
			t.Errorf("GET %s: %d without x-amzn-RequestId", path, resp.StatusCode)
		}
	}
	// X-Forwarded-* in an HTTP event.
	createFunction(t, c, "fwd", makeZip(t, map[string][]byte{"index.mjs": []byte(urlFunction)}), fnOpts{runtime: "nodejs20.x", handler: "index.handler"})
	cfg, err := c.CreateFunctionUrlConfig(ctx, &lambda.CreateFunctionUrlConfigInput{FunctionName: aws.String("fwd"), AuthType: types.FunctionUrlAuthTypeNone})
	if err != nil {
		t.Fatal(err)
	}
	allowPublicURL(t, c, "fwd", "")
	req, _ := http.NewRequest("GET", aws.ToString(cfg.FunctionUrl)+"echo", nil)
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	resp := unsigned(t, req)
	defer resp.Body.Close()
	var ev struct {
		Headers map[string]string `json:"headers"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ev); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(aws.ToString(cfg.FunctionUrl))
	if ev.Headers["x-forwarded-for"] != "203.0.113.7, 127.0.0.1" || ev.Headers["x-forwarded-proto"] != "http" || ev.Headers["x-forwarded-port"] != u.Port() {
		t.Errorf("forwarded headers: for %q proto %q port %q (listener port %s)", ev.Headers["x-forwarded-for"], ev.Headers["x-forwarded-proto"], ev.Headers["x-forwarded-port"], u.Port())
	}
}

// TestHTTPAPICors: an HTTP API's CorsConfiguration is stored, returned,
// answers preflights without invoking the function, and adds its headers
// to answers.
func TestHTTPAPICors(t *testing.T) {
	s := startServer(t, "")
	ctx := context.Background()
	c := s.lambda()
	fn := createFunction(t, c, "cors-fn", goZip(t), fnOpts{})
	gw := s.apigw()
	api, err := gw.CreateApi(ctx, &apigatewayv2.CreateApiInput{Name: aws.String("cors"), ProtocolType: agtypes.ProtocolTypeHttp, Target: fn.FunctionArn,
		CorsConfiguration: &agtypes.Cors{AllowOrigins: []string{"https://app.example"}, AllowMethods: []string{"GET", "POST"}, AllowHeaders: []string{"content-type"}, MaxAge: aws.Int32(300)}})
	if err != nil {
		t.Fatal(err)
	}
	allowAPI(t, c, "cors-fn", aws.ToString(api.ApiId))
	got, err := gw.GetApi(ctx, &apigatewayv2.GetApiInput{ApiId: api.ApiId})
	if err != nil || got.CorsConfiguration == nil || aws.ToInt32(got.CorsConfiguration.MaxAge) != 300 || got.CorsConfiguration.AllowOrigins[0] != "https://app.example" {
		t.Fatalf("GetApi: %v %+v", err, got)
	}
	endpoint := aws.ToString(api.ApiEndpoint)
	status, h, _ := httpDo(t, "OPTIONS", endpoint+"/orders", "", map[string][]string{"Origin": {"https://app.example"}, "Access-Control-Request-Method": {"POST"}})
	if status >= 300 || h.Get("Access-Control-Allow-Origin") != "https://app.example" || !strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") {
		t.Errorf("preflight: %d %v", status, h)
	}
	if n := s.usage(t, "cors-fn").Requests; n != 0 {
		t.Errorf("the preflight invoked the function (%d)", n)
	}
	status, h, _ = httpDo(t, "GET", endpoint+"/orders", "", map[string][]string{"Origin": {"https://app.example"}})
	if status != 200 || h.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Errorf("answer: %d %v", status, h)
	}
	if _, err := gw.DeleteCorsConfiguration(ctx, &apigatewayv2.DeleteCorsConfigurationInput{ApiId: api.ApiId}); err != nil {
		t.Fatal(err)
	}
	if _, h, _ := httpDo(t, "GET", endpoint+"/orders", "", map[string][]string{"Origin": {"https://app.example"}}); h.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("CORS headers after DeleteCorsConfiguration: %v", h)
	}
}

// TestListAllVersions: ListFunctions with FunctionVersion=ALL lists every
// published version after $LATEST, across pages.
func TestListAllVersions(t *testing.T) {
	s := startServer(t, "")
	ctx := context.Background()
	c := s.lambda()
	for _, name := range []string{"va", "vb"} {
		createFunction(t, c, name, goZip(t), fnOpts{})
		for i := range 2 {
			if _, err := c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String(name), Timeout: aws.Int32(int32(10 + i))}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: aws.String(name)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	var got []string
	for p := lambda.NewListFunctionsPaginator(c, &lambda.ListFunctionsInput{FunctionVersion: types.FunctionVersionAll, MaxItems: aws.Int32(2)}); p.HasMorePages(); {
		pg, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range pg.Functions {
			got = append(got, aws.ToString(f.FunctionName)+":"+aws.ToString(f.Version))
		}
	}
	if want := "va:$LATEST,va:1,va:2,vb:$LATEST,vb:1,vb:2"; strings.Join(got, ",") != want {
		t.Errorf("FunctionVersion=ALL: %v, want %s", got, want)
	}
	all, err := c.ListFunctions(ctx, &lambda.ListFunctionsInput{})
	if err != nil || len(all.Functions) != 2 {
		t.Errorf("without FunctionVersion: %v %d", err, len(all.Functions))
	}
}
