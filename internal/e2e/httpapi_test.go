package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewayv2"
	agtypes "github.com/aws/aws-sdk-go-v2/service/apigatewayv2/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
)

const v1Function = `
import json

def handler(event, context):
    return {"statusCode": 201, "multiValueHeaders": {"X-Multi": ["a", "b"]}, "body": json.dumps(event)}
`

func (s *server) apigw() *apigatewayv2.Client {
	return apigatewayv2.New(apigatewayv2.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(s.Endpoint),
		Credentials:  s.creds(),
	})
}

func httpDo(t *testing.T, method, url, body string, header map[string][]string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestHTTPAPIs(t *testing.T) {
	s := startServer(t, "")
	c := s.lambda()
	gw := s.apigw()
	ctx := context.Background()
	goFn := createFunction(t, c, "api-go", goZip(t), fnOpts{})
	nodeFn := createFunction(t, c, "api-node", makeZip(t, map[string][]byte{"index.mjs": []byte(urlFunction)}), fnOpts{runtime: "nodejs20.x", handler: "index.handler", timeout: 1})
	pyFn := createFunction(t, c, "api-py", makeZip(t, map[string][]byte{"app.py": []byte(v1Function)}), fnOpts{runtime: "python3.11", handler: "app.handler"})

	t.Run("quick create", func(t *testing.T) {
		api, err := gw.CreateApi(ctx, &apigatewayv2.CreateApiInput{Name: aws.String("quick"), ProtocolType: agtypes.ProtocolTypeHttp, Target: goFn.FunctionArn})
		if err != nil {
			t.Fatal(err)
		}
		// As on AWS, the function's policy must let API Gateway in.
		if status, _, body := httpDo(t, "GET", aws.ToString(api.ApiEndpoint)+"/x", "", nil); status != 500 || body != `{"message":"Internal Server Error"}` {
			t.Errorf("an API the function does not allow: %d %s", status, body)
		}
		allowAPI(t, c, "api-go", aws.ToString(api.ApiId))
		status, _, body := httpDo(t, "GET", aws.ToString(api.ApiEndpoint)+"/anything/at/all", "", nil)
		if status != 200 || !strings.Contains(body, `"message":"hello, world"`) {
			t.Errorf("quick create endpoint: %d %s", status, body)
		}
	})

	api, err := gw.CreateApi(ctx, &apigatewayv2.CreateApiInput{Name: aws.String("shop"), ProtocolType: agtypes.ProtocolTypeHttp})
	if err != nil {
		t.Fatal(err)
	}
	id, endpoint := api.ApiId, aws.ToString(api.ApiEndpoint)
	allowAPI(t, c, "api-node", aws.ToString(id))
	allowAPI(t, c, "api-py", aws.ToString(id))
	v2, err := gw.CreateIntegration(ctx, &apigatewayv2.CreateIntegrationInput{ApiId: id, IntegrationType: agtypes.IntegrationTypeAwsProxy,
		IntegrationUri: nodeFn.FunctionArn, PayloadFormatVersion: aws.String("2.0")})
	if err != nil {
		t.Fatal(err)
	}
	v1, err := gw.CreateIntegration(ctx, &apigatewayv2.CreateIntegrationInput{ApiId: id, IntegrationType: agtypes.IntegrationTypeAwsProxy,
		IntegrationUri: aws.String("arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/" + aws.ToString(pyFn.FunctionArn) + "/invocations"), PayloadFormatVersion: aws.String("1.0")})
	if err != nil {
		t.Fatal(err)
	}
	routes := map[string]string{}
	for key, integ := range map[string]*string{
		"GET /orders/{id}":    v2.IntegrationId,
		"GET /orders/latest":  v2.IntegrationId,
		"ANY /files/{proxy+}": v2.IntegrationId,
		"GET /slow":           v2.IntegrationId,
		"GET /error":          v2.IntegrationId,
		"POST /v1/echo":       v1.IntegrationId,
	} {
		r, err := gw.CreateRoute(ctx, &apigatewayv2.CreateRouteInput{ApiId: id, RouteKey: aws.String(key), Target: aws.String("integrations/" + aws.ToString(integ))})
		if err != nil {
			t.Fatalf("route %s: %v", key, err)
		}
		routes[key] = aws.ToString(r.RouteId)
	}
	if _, err := gw.CreateRoute(ctx, &apigatewayv2.CreateRouteInput{ApiId: id, RouteKey: aws.String("FETCH /x")}); errorCode(err) != "BadRequestException" {
		t.Errorf("bad route key: %v", err)
	}
	if _, err := gw.CreateRoute(ctx, &apigatewayv2.CreateRouteInput{ApiId: id, RouteKey: aws.String("GET /orders/{id}")}); errorCode(err) != "ConflictException" {
		t.Errorf("duplicate route: %v", err)
	}

	// Without a stage nothing is served.
	if status, _, body := httpDo(t, "GET", endpoint+"/orders/1", "", nil); status != 404 || body != `{"message":"Not Found"}` {
		t.Errorf("no stage: %d %s", status, body)
	}
	if _, err := gw.CreateStage(ctx, &apigatewayv2.CreateStageInput{ApiId: id, StageName: aws.String("$default"), AutoDeploy: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}

	event := func(method, path string) (int, map[string]any) {
		status, _, body := httpDo(t, method, endpoint+path, "", nil)
		var ev map[string]any
		_ = json.Unmarshal([]byte(body), &ev)
		return status, ev
	}
	for _, tc := range []struct {
		method, path, routeKey string
		params                 map[string]any
	}{
		{"GET", "/orders/42", "GET /orders/{id}", map[string]any{"id": "42"}},
		{"GET", "/orders/latest", "GET /orders/latest", nil},
		{"PUT", "/files/a/b/c.txt", "ANY /files/{proxy+}", map[string]any{"proxy": "a/b/c.txt"}},
	} {
		status, ev := event(tc.method, tc.path)
		if status != 200 || ev["routeKey"] != tc.routeKey || ev["rawPath"] != tc.path {
			t.Errorf("%s %s: %d routeKey %v rawPath %v", tc.method, tc.path, status, ev["routeKey"], ev["rawPath"])
			continue
		}
		got, _ := ev["pathParameters"].(map[string]any)
		for k, v := range tc.params {
			if got[k] != v {
				t.Errorf("%s %s: pathParameters %v", tc.method, tc.path, got)
			}
		}
		rc, _ := ev["requestContext"].(map[string]any)
		if rc["apiId"] != aws.ToString(id) || rc["stage"] != "$default" {
			t.Errorf("requestContext %v", rc)
		}
	}
	for _, tc := range []struct{ method, path string }{{"GET", "/nowhere"}, {"POST", "/orders/42"}} {
		if status, _, body := httpDo(t, tc.method, endpoint+tc.path, "", nil); status != 404 || body != `{"message":"Not Found"}` {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, status, body)
		}
	}
	if status, _, body := httpDo(t, "GET", endpoint+"/error", "", nil); status != 502 || body != `{"message":"Internal Server Error"}` {
		t.Errorf("function error: %d %s", status, body)
	}
	if status, _, _ := httpDo(t, "GET", endpoint+"/slow", "", nil); status != 504 {
		t.Errorf("timeout: %d", status)
	}

	// Payload format 1.0, both ways.
	status, hdr, body := httpDo(t, "POST", endpoint+"/v1/echo?x=1&x=2", `{"a":1}`, map[string][]string{"X-Dup": {"p", "q"}, "Content-Type": {"application/json"}})
	var ev1 map[string]any
	_ = json.Unmarshal([]byte(body), &ev1)
	mq, _ := ev1["multiValueQueryStringParameters"].(map[string]any)
	mh, _ := ev1["multiValueHeaders"].(map[string]any)
	if status != 201 || ev1["version"] != "1.0" || ev1["httpMethod"] != "POST" || ev1["resource"] != "/v1/echo" || ev1["body"] != `{"a":1}` ||
		len(mq["x"].([]any)) != 2 || len(mh["X-Dup"].([]any)) != 2 || len(hdr.Values("X-Multi")) != 2 {
		t.Errorf("1.0: %d %v %s", status, hdr, body)
	}

	// A $default route catches the rest.
	def, err := gw.CreateRoute(ctx, &apigatewayv2.CreateRouteInput{ApiId: id, RouteKey: aws.String("$default"), Target: aws.String("integrations/" + aws.ToString(v2.IntegrationId))})
	if err != nil {
		t.Fatal(err)
	}
	if status, ev := event("DELETE", "/nowhere"); status != 200 || ev["routeKey"] != "$default" {
		t.Errorf("$default: %d %v", status, ev["routeKey"])
	}

	// Reads, updates and deletes.
	apis, err := gw.GetApis(ctx, &apigatewayv2.GetApisInput{})
	if err != nil || len(apis.Items) != 2 {
		t.Errorf("get apis: %v %d", err, len(apis.Items))
	}
	rs, err := gw.GetRoutes(ctx, &apigatewayv2.GetRoutesInput{ApiId: id})
	if err != nil || len(rs.Items) != 7 {
		t.Errorf("get routes: %v %d", err, len(rs.Items))
	}
	is, err := gw.GetIntegrations(ctx, &apigatewayv2.GetIntegrationsInput{ApiId: id})
	if err != nil || len(is.Items) != 2 {
		t.Errorf("get integrations: %v", err)
	}
	if _, err := gw.UpdateRoute(ctx, &apigatewayv2.UpdateRouteInput{ApiId: id, RouteId: aws.String(routes["GET /orders/latest"]), RouteKey: aws.String("GET /orders/newest")}); err != nil {
		t.Fatal(err)
	}
	if status, ev := event("GET", "/orders/newest"); status != 200 || ev["routeKey"] != "GET /orders/newest" {
		t.Errorf("updated route: %d %v", status, ev["routeKey"])
	}
	if _, err := gw.DeleteRoute(ctx, &apigatewayv2.DeleteRouteInput{ApiId: id, RouteId: def.RouteId}); err != nil {
		t.Fatal(err)
	}
	if status, _, _ := httpDo(t, "DELETE", endpoint+"/nowhere", "", nil); status != 404 {
		t.Errorf("after deleting $default: %d", status)
	}
	if _, err := gw.DeleteIntegration(ctx, &apigatewayv2.DeleteIntegrationInput{ApiId: id, IntegrationId: v1.IntegrationId}); errorCode(err) != "ConflictException" {
		t.Errorf("delete integration in use: %v", err)
	}
	if _, err := gw.UpdateApi(ctx, &apigatewayv2.UpdateApiInput{ApiId: id, Name: aws.String("shop2")}); err != nil {
		t.Fatal(err)
	}
	if got, err := gw.GetApi(ctx, &apigatewayv2.GetApiInput{ApiId: id}); err != nil || aws.ToString(got.Name) != "shop2" {
		t.Errorf("get api: %v", err)
	}
	if _, err := gw.DeleteApi(ctx, &apigatewayv2.DeleteApiInput{ApiId: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := gw.GetApi(ctx, &apigatewayv2.GetApiInput{ApiId: id}); errorCode(err) != "NotFoundException" {
		t.Errorf("deleted api: %v", err)
	}
	if status, _, _ := httpDo(t, "GET", endpoint+"/orders/1", "", nil); status != 404 {
		t.Errorf("deleted api endpoint: %d", status)
	}
}

// allowAPI lets an HTTP API invoke fn, as `aws lambda add-permission
// --principal apigateway.amazonaws.com --source-arn ...` does.
func allowAPI(t testing.TB, c *lambda.Client, fn, apiID string) {
	t.Helper()
	if _, err := c.AddPermission(context.Background(), &lambda.AddPermissionInput{FunctionName: aws.String(fn), StatementId: aws.String("api-" + apiID),
		Action: aws.String("lambda:InvokeFunction"), Principal: aws.String("apigateway.amazonaws.com"),
		SourceArn: aws.String("arn:aws:execute-api:us-east-1:000000000000:" + apiID + "/*")}); err != nil {
		t.Fatal(err)
	}
}

// TestHTTPAPIStages: named stages served under their name with their
// variables, deployments that freeze routes for a stage without
// autoDeploy, and the AWS CLI's create-deployment and update-stage.
func TestHTTPAPIStages(t *testing.T) {
	s := startServer(t, "")
	ctx := context.Background()
	c := s.lambda()
	fn := createFunction(t, c, "stage-fn", makeZip(t, map[string][]byte{"index.mjs": []byte(urlFunction)}), fnOpts{runtime: "nodejs20.x", handler: "index.handler"})
	gw := s.apigw()
	api, err := gw.CreateApi(ctx, &apigatewayv2.CreateApiInput{Name: aws.String("staged"), ProtocolType: agtypes.ProtocolTypeHttp})
	if err != nil {
		t.Fatal(err)
	}
	id := api.ApiId
	allowAPI(t, c, "stage-fn", aws.ToString(id))
	integ, err := gw.CreateIntegration(ctx, &apigatewayv2.CreateIntegrationInput{ApiId: id, IntegrationType: agtypes.IntegrationTypeAwsProxy,
		IntegrationUri: fn.FunctionArn, PayloadFormatVersion: aws.String("2.0")})
	if err != nil {
		t.Fatal(err)
	}
	route := func(key string) {
		if _, err := gw.CreateRoute(ctx, &apigatewayv2.CreateRouteInput{ApiId: id, RouteKey: aws.String(key), Target: aws.String("integrations/" + aws.ToString(integ.IntegrationId))}); err != nil {
			t.Fatalf("route %s: %v", key, err)
		}
	}
	route("GET /v1/items")
	endpoint := aws.ToString(api.ApiEndpoint)

	// A stage without autoDeploy serves nothing until deployed.
	if _, err := gw.CreateStage(ctx, &apigatewayv2.CreateStageInput{ApiId: id, StageName: aws.String("prod"),
		StageVariables: map[string]string{"table": "orders-prod"}}); err != nil {
		t.Fatal(err)
	}
	if status, _, _ := httpDo(t, "GET", endpoint+"/prod/v1/items", "", nil); status != 404 {
		t.Errorf("undeployed stage: %d", status)
	}
	if _, err := gw.CreateStage(ctx, &apigatewayv2.CreateStageInput{ApiId: id, StageName: aws.String("bad stage")}); errorCode(err) != "BadRequestException" {
		t.Errorf("stage name with a space: %v", err)
	}
	if _, err := gw.CreateStage(ctx, &apigatewayv2.CreateStageInput{ApiId: id, StageName: aws.String("logs"),
		AccessLogSettings: &agtypes.AccessLogSettings{DestinationArn: aws.String("arn:aws:logs:us-east-1:000000000000:log-group:x"), Format: aws.String("$context.requestId")}}); errorCode(err) != "BadRequestException" || !strings.Contains(err.Error(), "accessLogSettings") {
		t.Errorf("access log settings: %v", err)
	}

	// Deployed with the AWS CLI.
	dir := t.TempDir()
	env := s.clientEnv(dir)
	cli := func(args ...string) string {
		out, err := runCmd(t, env, "aws", append([]string{"--endpoint-url", s.Endpoint, "--region", "us-east-1", "--output", "json", "apigatewayv2"}, args...)...)
		if err != nil {
			t.Fatalf("aws apigatewayv2 %v: %v\n%s", args, err, out)
		}
		return out
	}
	var dep struct{ DeploymentId, DeploymentStatus string }
	if err := json.Unmarshal([]byte(cli("create-deployment", "--api-id", aws.ToString(id), "--stage-name", "prod", "--description", "first")), &dep); err != nil || dep.DeploymentId == "" || dep.DeploymentStatus != "DEPLOYED" {
		t.Fatalf("create-deployment: %v %+v", err, dep)
	}
	status, _, body := httpDo(t, "GET", endpoint+"/prod/v1/items", "", nil)
	var ev struct {
		RawPath        string            `json:"rawPath"`
		RouteKey       string            `json:"routeKey"`
		StageVariables map[string]string `json:"stageVariables"`
		RequestContext struct {
			Stage string `json:"stage"`
		} `json:"requestContext"`
	}
	_ = json.Unmarshal([]byte(body), &ev)
	if status != 200 || ev.RawPath != "/prod/v1/items" || ev.RouteKey != "GET /v1/items" || ev.RequestContext.Stage != "prod" || ev.StageVariables["table"] != "orders-prod" {
		t.Errorf("prod stage: %d %s", status, body)
	}

	// A new route is not in prod until the next deployment; an
	// autoDeploy stage has it at once.
	route("GET /v2/items")
	if status, _, _ := httpDo(t, "GET", endpoint+"/prod/v2/items", "", nil); status != 404 {
		t.Errorf("an undeployed route is served: %d", status)
	}
	if _, err := gw.CreateStage(ctx, &apigatewayv2.CreateStageInput{ApiId: id, StageName: aws.String("dev"), AutoDeploy: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	if status, _, _ := httpDo(t, "GET", endpoint+"/dev/v2/items", "", nil); status != 200 {
		t.Errorf("autoDeploy stage: %d", status)
	}
	dev, err := gw.GetStage(ctx, &apigatewayv2.GetStageInput{ApiId: id, StageName: aws.String("dev")})
	if err != nil || aws.ToString(dev.DeploymentId) == "" || !aws.ToBool(dev.AutoDeploy) {
		t.Errorf("GetStage dev: %v %+v", err, dev)
	}
	second, err := gw.CreateDeployment(ctx, &apigatewayv2.CreateDeploymentInput{ApiId: id, Description: aws.String("second")})
	if err != nil {
		t.Fatal(err)
	}
	cli("update-stage", "--api-id", aws.ToString(id), "--stage-name", "prod", "--deployment-id", aws.ToString(second.DeploymentId), "--stage-variables", "table=orders-v2")
	status, _, body = httpDo(t, "GET", endpoint+"/prod/v2/items", "", nil)
	_ = json.Unmarshal([]byte(body), &ev)
	if status != 200 || ev.StageVariables["table"] != "orders-v2" {
		t.Errorf("prod after update-stage: %d %s", status, body)
	}
	deps, err := gw.GetDeployments(ctx, &apigatewayv2.GetDeploymentsInput{ApiId: id})
	if err != nil || len(deps.Items) != 3 { // first, second, dev's automatic one
		t.Errorf("GetDeployments: %v %+v", err, deps)
	}
	if _, err := gw.DeleteDeployment(ctx, &apigatewayv2.DeleteDeploymentInput{ApiId: id, DeploymentId: second.DeploymentId}); errorCode(err) != "BadRequestException" {
		t.Errorf("deleting a deployment a stage serves: %v", err)
	}
	if _, err := gw.DeleteDeployment(ctx, &apigatewayv2.DeleteDeploymentInput{ApiId: id, DeploymentId: aws.String(dep.DeploymentId)}); err != nil {
		t.Errorf("deleting an unused deployment: %v", err)
	}
	stages, err := gw.GetStages(ctx, &apigatewayv2.GetStagesInput{ApiId: id})
	if err != nil || len(stages.Items) != 2 {
		t.Errorf("GetStages: %v %+v", err, stages)
	}
	// Without a $default stage the endpoint's root serves nothing.
	if status, _, _ := httpDo(t, "GET", endpoint+"/v1/items", "", nil); status != 404 {
		t.Errorf("no $default stage: %d", status)
	}
}
