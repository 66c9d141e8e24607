package e2e

import (
	"context"
	"encoding/base64"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

func TestProvisionedConcurrency(t *testing.T) {
	s := startServer(t, "", "--idle-timeout", "1s")
	c := s.lambda()
	ctx := context.Background()
	createFunction(t, c, "pc", goZip(t), fnOpts{})
	if _, err := c.PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: aws.String("pc")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateAlias(ctx, &lambda.CreateAliasInput{FunctionName: aws.String("pc"), Name: aws.String("live"), FunctionVersion: aws.String("1")}); err != nil {
		t.Fatal(err)
	}

	_, err := c.PutProvisionedConcurrencyConfig(ctx, &lambda.PutProvisionedConcurrencyConfigInput{FunctionName: aws.String("pc"), Qualifier: aws.String("$LATEST"), ProvisionedConcurrentExecutions: aws.Int32(1)})
	if errorCode(err) != "InvalidParameterValueException" {
		t.Errorf("PC on $LATEST: %v", err)
	}
	_, err = c.GetProvisionedConcurrencyConfig(ctx, &lambda.GetProvisionedConcurrencyConfigInput{FunctionName: aws.String("pc"), Qualifier: aws.String("live")})
	if errorCode(err) != "ProvisionedConcurrencyConfigNotFoundException" || httpStatus(err) != 404 {
		t.Errorf("missing config: %v", err)
	}

	put, err := c.PutProvisionedConcurrencyConfig(ctx, &lambda.PutProvisionedConcurrencyConfigInput{FunctionName: aws.String("pc"), Qualifier: aws.String("live"), ProvisionedConcurrentExecutions: aws.Int32(3)})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToInt32(put.RequestedProvisionedConcurrentExecutions) != 3 || (put.Status != types.ProvisionedConcurrencyStatusEnumInProgress && put.Status != types.ProvisionedConcurrencyStatusEnumReady) {
		t.Errorf("put: %+v", put)
	}
	waitFor(t, 15*time.Second, "provisioned instances to be READY", func() bool {
		got, err := c.GetProvisionedConcurrencyConfig(ctx, &lambda.GetProvisionedConcurrencyConfigInput{FunctionName: aws.String("pc"), Qualifier: aws.String("live")})
		return err == nil && got.Status == types.ProvisionedConcurrencyStatusEnumReady && aws.ToInt32(got.AvailableProvisionedConcurrentExecutions) == 3
	})
	if n := len(s.instances()); n != 3 {
		t.Errorf("%d instances before any request, want 3", n)
	}

	// Served warm, with no init, as a provisioned environment.
	out, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("pc"), Qualifier: aws.String("live"), Payload: []byte(`{"env":"AWS_LAMBDA_INITIALIZATION_TYPE"}`), LogType: types.LogTypeTail})
	if err != nil {
		t.Fatal(err)
	}
	tail, _ := base64.StdEncoding.DecodeString(aws.ToString(out.LogResult))
	if decodeReply(t, out.Payload).EnvValue != "provisioned-concurrency" || strings.Contains(string(tail), "Init Duration") {
		t.Errorf("provisioned invoke: %s\n%s", out.Payload, tail)
	}
	// $LATEST is on demand.
	out = invoke(t, c, "pc", `{"env":"AWS_LAMBDA_INITIALIZATION_TYPE"}`)
	if decodeReply(t, out.Payload).EnvValue != "on-demand" {
		t.Errorf("$LATEST: %s", out.Payload)
	}

	// Beyond the provisioned count, on-demand instances serve the rest.
	var wg sync.WaitGroup
	ids := sync.Map{}
	for range 5 {
		wg.Go(func() {
			out, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("pc"), Qualifier: aws.String("1"), Payload: []byte(`{"sleepMs":700}`)})
			if err != nil || out.FunctionError != nil {
				t.Errorf("burst over provisioned: %v", err)
				return
			}
			ids.Store(decodeReply(t, out.Payload).Instance, true)
		})
	}
	wg.Wait()
	n := 0
	ids.Range(func(_, _ any) bool { n++; return true })
	if n != 5 {
		t.Errorf("5 concurrent on 3 provisioned ran on %d instances", n)
	}

	// Idle periods reap on-demand instances only.
	time.Sleep(2500 * time.Millisecond)
	if got := len(s.instances()); got != 3 {
		t.Errorf("%d instances after the idle timeout, want the 3 provisioned", got)
	}

	// A provisioned instance that dies is replaced.
	victim := s.instances()[0]
	_ = syscall.Kill(victim, syscall.SIGKILL)
	waitFor(t, 10*time.Second, "replacement of a dead provisioned instance", func() bool {
		inst := s.instances()
		if len(inst) != 3 {
			return false
		}
		for _, p := range inst {
			if p == victim {
				return false
			}
		}
		return true
	})

	list, err := c.ListProvisionedConcurrencyConfigs(ctx, &lambda.ListProvisionedConcurrencyConfigsInput{FunctionName: aws.String("pc")})
	if err != nil || len(list.ProvisionedConcurrencyConfigs) != 1 || aws.ToString(list.ProvisionedConcurrencyConfigs[0].FunctionArn) != "arn:aws:lambda:us-east-1:000000000000:function:pc:live" {
		t.Errorf("list: %v %+v", err, list)
	}

	if _, err := c.DeleteProvisionedConcurrencyConfig(ctx, &lambda.DeleteProvisionedConcurrencyConfigInput{FunctionName: aws.String("pc"), Qualifier: aws.String("live")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "provisioned instances to go", func() bool { return len(s.instances()) == 0 })

	// Provisioned time is billed.
	waitFor(t, 5*time.Second, "provisioned GB-seconds in usage", func() bool {
		return s.usage(t, "pc").ProvisionedGBSeconds > 0
	})

	// The configuration survives a restart and is provisioned again.
	if _, err := c.PutProvisionedConcurrencyConfig(ctx, &lambda.PutProvisionedConcurrencyConfigInput{FunctionName: aws.String("pc"), Qualifier: aws.String("1"), ProvisionedConcurrentExecutions: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	s.kill()
	s.restart()
	waitFor(t, 15*time.Second, "provisioned instances after restart", func() bool { return len(s.instances()) == 2 })
}
