// Command roleprobe is a function that tries, with the credentials of its
// execution role and the AWS SDK for Go, what a hostile function would:
// each attempt's outcome (ok, or the error code) goes back in the answer.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	lambdasvc "github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	stypes "github.com/aws/aws-sdk-go-v2/service/scheduler/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"
)

type event struct {
	Allowed string `json:"allowed"` // a queue URL the role may send to
	Other   string `json:"other"`   // one it may not
	Victim  string `json:"victim"`  // another function
	Code    string `json:"code"`    // the path of the victim's code, without its link's signature
}

func outcome(err error) string {
	if err == nil {
		return "ok"
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return err.Error()
}

func handle(ctx context.Context, e event) (map[string]string, error) {
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRetryMaxAttempts(1))
	if err != nil {
		return nil, err
	}
	q := sqs.NewFromConfig(cfg)
	l := lambdasvc.NewFromConfig(cfg)
	out := map[string]string{}
	_, err = q.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &e.Allowed, MessageBody: aws.String("from the role")})
	out["send-allowed"] = outcome(err)
	_, err = q.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &e.Other, MessageBody: aws.String("not allowed")})
	out["send-other"] = outcome(err)
	_, err = q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &e.Other})
	out["receive-other"] = outcome(err)
	_, err = q.PurgeQueue(ctx, &sqs.PurgeQueueInput{QueueUrl: &e.Other})
	out["purge-other"] = outcome(err)
	_, err = q.ListQueues(ctx, &sqs.ListQueuesInput{})
	out["list-queues"] = outcome(err)
	_, err = l.ListFunctions(ctx, &lambdasvc.ListFunctionsInput{})
	out["list-functions"] = outcome(err)
	_, err = l.GetFunction(ctx, &lambdasvc.GetFunctionInput{FunctionName: &e.Victim})
	out["get-victim"] = outcome(err)
	_, err = l.UpdateFunctionCode(ctx, &lambdasvc.UpdateFunctionCodeInput{FunctionName: &e.Victim, ZipFile: []byte("PK")})
	out["update-victim"] = outcome(err)
	_, err = l.DeleteFunction(ctx, &lambdasvc.DeleteFunctionInput{FunctionName: &e.Victim})
	out["delete-victim"] = outcome(err)
	_, err = l.Invoke(ctx, &lambdasvc.InvokeInput{FunctionName: &e.Victim})
	out["invoke-victim"] = outcome(err)
	_, err = l.CreateFunctionUrlConfig(ctx, &lambdasvc.CreateFunctionUrlConfigInput{FunctionName: &e.Victim, AuthType: "NONE"})
	out["url-victim"] = outcome(err)
	_, err = l.AddPermission(ctx, &lambdasvc.AddPermissionInput{FunctionName: &e.Victim, StatementId: aws.String("open"),
		Action: aws.String("lambda:InvokeFunction"), Principal: aws.String("*")})
	out["permission-victim"] = outcome(err)
	_, err = scheduler.NewFromConfig(cfg).CreateSchedule(ctx, &scheduler.CreateScheduleInput{Name: aws.String("evil"), ScheduleExpression: aws.String("rate(1 minute)"),
		FlexibleTimeWindow: &stypes.FlexibleTimeWindow{Mode: stypes.FlexibleTimeWindowModeOff},
		Target:             &stypes.Target{Arn: aws.String("arn:aws:lambda:us-east-1:000000000000:function:" + e.Victim), RoleArn: aws.String("arn:aws:iam::000000000000:role/sender")}})
	out["schedule-victim"] = outcome(err)
	_, err = iam.NewFromConfig(cfg).PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String("sender"), PolicyName: aws.String("escalate"),
		PolicyDocument: aws.String(`{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`)})
	out["escalate-role"] = outcome(err)
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return nil, err
	}
	for name, path := range map[string]string{"usage": "/stratus/v1/usage", "metrics": "/metrics", "logs": "/stratus/v1/functions/" + e.Victim + "/logs",
		"code": e.Code, "pprof": "/debug/pprof/"} {
		r, _ := http.NewRequestWithContext(ctx, "GET", os.Getenv("AWS_ENDPOINT_URL")+path, nil)
		sum := sha256.Sum256(nil)
		_ = v4.NewSigner().SignHTTP(ctx, creds, r, hex.EncodeToString(sum[:]), "stratus", cfg.Region, time.Now())
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			out[name] = err.Error()
			continue
		}
		resp.Body.Close()
		out[name] = strconv.Itoa(resp.StatusCode)
	}
	// Without credentials at all.
	resp, err := http.Get(os.Getenv("AWS_ENDPOINT_URL") + "/2015-03-31/functions/")
	if err == nil {
		resp.Body.Close()
		out["unsigned-list"] = strconv.Itoa(resp.StatusCode)
	}
	return out, nil
}

func main() { lambda.Start(handle) }
