package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

const urlFunction = `
export const handler = async (event) => {
  const path = event.rawPath;
  if (path === "/plain") return { hello: "plain" };
  if (path === "/status") return { statusCode: 418, headers: { "content-type": "text/plain" }, body: "teapot" };
  if (path === "/binary") return { statusCode: 200, headers: { "content-type": "application/octet-stream" }, body: Buffer.from([0, 1, 2, 255]).toString("base64"), isBase64Encoded: true };
  if (path === "/error") throw new Error("broken on purpose");
  if (path === "/slow") { await new Promise((r) => setTimeout(r, 3000)); return {}; }
  return {
    statusCode: 200,
    headers: { "content-type": "application/json", "x-custom": "1" },
    cookies: ["a=1; Path=/", "b=2"],
    body: JSON.stringify(event),
  };
};
`

type urlEvent struct {
	Version               string            `json:"version"`
	RouteKey              string            `json:"routeKey"`
	RawPath               string            `json:"rawPath"`
	RawQueryString        string            `json:"rawQueryString"`
	Cookies               []string          `json:"cookies"`
	Headers               map[string]string `json:"headers"`
	QueryStringParameters map[string]string `json:"queryStringParameters"`
	Body                  string            `json:"body"`
	IsBase64Encoded       bool              `json:"isBase64Encoded"`
	RequestContext        struct {
		APIID string `json:"apiId"`
		HTTP  struct {
			Method    string `json:"method"`
			Path      string `json:"path"`
			SourceIP  string `json:"sourceIp"`
			UserAgent string `json:"userAgent"`
		} `json:"http"`
		RequestID string `json:"requestId"`
		Stage     string `json:"stage"`
		TimeEpoch int64  `json:"timeEpoch"`
	} `json:"requestContext"`
}

func TestFunctionURLs(t *testing.T) {
	s := startServer(t, "")
	c := s.lambda()
	ctx := context.Background()
	createFunction(t, c, "web", makeZip(t, map[string][]byte{"index.mjs": []byte(urlFunction)}), fnOpts{runtime: "nodejs20.x", handler: "index.handler", timeout: 1})

	created, err := c.CreateFunctionUrlConfig(ctx, &lambda.CreateFunctionUrlConfigInput{
		FunctionName: aws.String("web"),
		AuthType:     types.FunctionUrlAuthTypeNone,
		Cors: &types.Cors{AllowOrigins: []string{"https://app.example"}, AllowMethods: []string{"GET", "POST"},
			AllowHeaders: []string{"content-type"}, ExposeHeaders: []string{"x-custom"}, MaxAge: aws.Int32(600)},
	})
	if err != nil {
		t.Fatal(err)
	}
	base := aws.ToString(created.FunctionUrl)
	if !strings.HasPrefix(base, "http://") || aws.ToString(created.FunctionArn) != "arn:aws:lambda:us-east-1:000000000000:function:web" {
		t.Fatalf("created %+v", created)
	}
	// As on AWS, a NONE URL answers only once the function's policy lets
	// anyone invoke it through its URL.
	if resp, err := http.Get(base + "echo"); err != nil || resp.StatusCode != 403 {
		t.Fatalf("a URL without the public permission: %v %v", resp, err)
	}
	allowPublicURL(t, c, "web", "")
	if _, err := c.CreateFunctionUrlConfig(ctx, &lambda.CreateFunctionUrlConfigInput{FunctionName: aws.String("web"), AuthType: types.FunctionUrlAuthTypeNone}); errorCode(err) != "ResourceConflictException" {
		t.Errorf("duplicate: %v", err)
	}
	got, err := c.GetFunctionUrlConfig(ctx, &lambda.GetFunctionUrlConfigInput{FunctionName: aws.String("web")})
	if err != nil || aws.ToString(got.FunctionUrl) != base || got.Cors == nil || aws.ToInt32(got.Cors.MaxAge) != 600 {
		t.Fatalf("get: %v %+v", err, got)
	}
	list, err := c.ListFunctionUrlConfigs(ctx, &lambda.ListFunctionUrlConfigsInput{FunctionName: aws.String("web")})
	if err != nil || len(list.FunctionUrlConfigs) != 1 {
		t.Errorf("list: %v %+v", err, list)
	}

	t.Run("event and response", func(t *testing.T) {
		req, _ := http.NewRequest("GET", base+"echo?x=1&x=2&y=3", nil)
		req.Header.Add("X-Multi", "a")
		req.Header.Add("X-Multi", "b")
		req.Header.Set("User-Agent", "stratus-test")
		req.Header.Set("Cookie", "c1=v1; c2=v2")
		req.Header.Set("Origin", "https://app.example")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("X-Custom") != "1" || len(resp.Header.Values("Set-Cookie")) != 2 {
			t.Errorf("response %d %v", resp.StatusCode, resp.Header)
		}
		if resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" || resp.Header.Get("Access-Control-Expose-Headers") != "x-custom" {
			t.Errorf("cors headers %v", resp.Header)
		}
		var ev urlEvent
		if err := json.Unmarshal(body, &ev); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if ev.Version != "2.0" || ev.RouteKey != "$default" || ev.RawPath != "/echo" || ev.RawQueryString != "x=1&x=2&y=3" ||
			ev.QueryStringParameters["x"] != "1,2" || ev.Headers["x-multi"] != "a,b" || len(ev.Cookies) != 2 || ev.Cookies[0] != "c1=v1" ||
			ev.RequestContext.HTTP.Method != "GET" || ev.RequestContext.HTTP.Path != "/echo" || ev.RequestContext.HTTP.SourceIP != "127.0.0.1" ||
			ev.RequestContext.HTTP.UserAgent != "stratus-test" || ev.RequestContext.RequestID == "" || ev.RequestContext.TimeEpoch == 0 ||
			ev.RequestContext.Stage != "$default" || ev.IsBase64Encoded {
			t.Errorf("event %s", body)
		}
	})

	t.Run("binary request body", func(t *testing.T) {
		raw := []byte{0, 1, 2, 200, 255}
		resp, err := http.Post(base+"echo", "application/octet-stream", bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var ev urlEvent
		_ = json.Unmarshal(body, &ev)
		got, _ := base64.StdEncoding.DecodeString(ev.Body)
		if !ev.IsBase64Encoded || !bytes.Equal(got, raw) || ev.RequestContext.HTTP.Method != "POST" {
			t.Errorf("binary body: %s", body)
		}
		resp, err = http.Post(base+"echo", "application/json", strings.NewReader(`{"k":"v"}`))
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		ev = urlEvent{}
		_ = json.Unmarshal(body, &ev)
		if ev.IsBase64Encoded || ev.Body != `{"k":"v"}` {
			t.Errorf("text body: %s", body)
		}
	})

	for _, tc := range []struct {
		path, wantBody, wantType string
		status                   int
	}{
		{"plain", `{"hello":"plain"}`, "application/json", 200},
		{"status", "teapot", "text/plain", 418},
		{"binary", "\x00\x01\x02\xff", "application/octet-stream", 200},
		{"error", `{"Message":"Internal Server Error"}`, "application/json", 502},
		{"slow", `{"Message":"Endpoint request timed out"}`, "application/json", 504},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp, err := http.Get(base + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || string(body) != tc.wantBody || !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.wantType) {
				t.Errorf("%s: %d %q %q", tc.path, resp.StatusCode, body, resp.Header.Get("Content-Type"))
			}
		})
	}

	t.Run("cors preflight", func(t *testing.T) {
		for origin, want := range map[string]string{"https://app.example": "https://app.example", "https://evil.example": ""} {
			req, _ := http.NewRequest("OPTIONS", base+"echo", nil)
			req.Header.Set("Origin", origin)
			req.Header.Set("Access-Control-Request-Method", "POST")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != want {
				t.Errorf("preflight from %s: %d %v", origin, resp.StatusCode, resp.Header)
			}
			if want != "" && (resp.Header.Get("Access-Control-Allow-Methods") != "GET,POST" || resp.Header.Get("Access-Control-Max-Age") != "600") {
				t.Errorf("preflight headers %v", resp.Header)
			}
		}
	})

	t.Run("body over 6 MB", func(t *testing.T) {
		resp, err := http.Post(base+"echo", "text/plain", strings.NewReader(strings.Repeat("z", 6*1024*1024+1)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Errorf("status %d", resp.StatusCode)
		}
	})

	t.Run("host-based address and HTTP/2 cleartext", func(t *testing.T) {
		id := strings.TrimSuffix(strings.TrimPrefix(base[strings.Index(base, "/url/"):], "/url/"), "/")
		gateway := base[:strings.Index(base, "/url/")]
		tr := &http.Transport{Protocols: new(http.Protocols)}
		tr.Protocols.SetUnencryptedHTTP2(true)
		req, _ := http.NewRequest("GET", gateway+"/plain", nil)
		req.Host = id + ".lambda-url.us-east-1.localhost"
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != `{"hello":"plain"}` || resp.ProtoMajor != 2 {
			t.Errorf("host routing over %s: %d %s", resp.Proto, resp.StatusCode, body)
		}
	})

	if _, err := c.UpdateFunctionUrlConfig(ctx, &lambda.UpdateFunctionUrlConfigInput{FunctionName: aws.String("web"), Cors: &types.Cors{AllowOrigins: []string{"*"}}}); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", base+"plain", nil)
	req.Header.Set("Origin", "https://any.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("after update: %v", resp.Header)
	}

	if _, err := c.DeleteFunctionUrlConfig(ctx, &lambda.DeleteFunctionUrlConfigInput{FunctionName: aws.String("web")}); err != nil {
		t.Fatal(err)
	}
	resp, err = http.Get(base + "plain")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 || string(body) != `{"Message":"Not Found"}` {
		t.Errorf("deleted url: %d %s", resp.StatusCode, body)
	}
	if _, err := c.GetFunctionUrlConfig(ctx, &lambda.GetFunctionUrlConfigInput{FunctionName: aws.String("web")}); errorCode(err) != "ResourceNotFoundException" {
		t.Errorf("get deleted: %v", err)
	}
}

// TestFunctionURLThrottle: a function held at reserved concurrency 0 answers 429 through its URL.
func TestFunctionURLThrottle(t *testing.T) {
	s := startServer(t, "")
	c := s.lambda()
	ctx := context.Background()
	createFunction(t, c, "held", goZip(t), fnOpts{})
	cfg, err := c.CreateFunctionUrlConfig(ctx, &lambda.CreateFunctionUrlConfigInput{FunctionName: aws.String("held"), AuthType: types.FunctionUrlAuthTypeNone})
	if err != nil {
		t.Fatal(err)
	}
	allowPublicURL(t, c, "held", "")
	if _, err := c.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{FunctionName: aws.String("held"), ReservedConcurrentExecutions: aws.Int32(0)}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(aws.ToString(cfg.FunctionUrl))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || string(body) != `{"Message":"Too Many Requests"}` {
		t.Errorf("throttled url: %d %v %s", resp.StatusCode, resp.Header, body)
	}
}

// TestGatewaySlowClient: a client that never finishes its headers is cut
// off by the header timeout and never reaches a function.
func TestGatewaySlowClient(t *testing.T) {
	s := startServer(t, "")
	c := s.lambda()
	createFunction(t, c, "slowclient", goZip(t), fnOpts{})
	cfg, err := c.CreateFunctionUrlConfig(context.Background(), &lambda.CreateFunctionUrlConfigInput{FunctionName: aws.String("slowclient"), AuthType: types.FunctionUrlAuthTypeNone})
	if err != nil {
		t.Fatal(err)
	}
	u := aws.ToString(cfg.FunctionUrl)
	host := strings.TrimPrefix(u, "http://")
	host = host[:strings.Index(host, "/")]
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\nX-Slow: ", u[strings.Index(u, "/url/"):])
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, 512)
	_, err = conn.Read(buf) // the server closes the connection
	if err == nil && time.Since(start) < 5*time.Second {
		t.Errorf("server answered an unfinished request: %q", buf)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("stalled client held the connection for %v", d)
	}
	if n := len(s.instances()); n != 0 {
		t.Errorf("a stalled client started %d instances", n)
	}
}

// allowPublicURL adds the two statements a function URL with AuthType
// NONE needs, as `aws lambda add-permission` would.
func allowPublicURL(t testing.TB, c *lambda.Client, fn, qualifier string) {
	t.Helper()
	var q *string
	if qualifier != "" {
		q = aws.String(qualifier)
	}
	ctx := context.Background()
	if _, err := c.AddPermission(ctx, &lambda.AddPermissionInput{FunctionName: aws.String(fn), Qualifier: q, StatementId: aws.String("url-public"),
		Action: aws.String("lambda:InvokeFunctionUrl"), Principal: aws.String("*"), FunctionUrlAuthType: types.FunctionUrlAuthTypeNone}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddPermission(ctx, &lambda.AddPermissionInput{FunctionName: aws.String(fn), Qualifier: q, StatementId: aws.String("url-invoke"),
		Action: aws.String("lambda:InvokeFunction"), Principal: aws.String("*"), InvokedViaFunctionUrl: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
}
