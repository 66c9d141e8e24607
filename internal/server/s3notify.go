package server

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/stratus-faas/stratus/internal/auth"
	"github.com/stratus-faas/stratus/internal/events"
	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/queue"
	"github.com/stratus-faas/stratus/internal/registry"
)

// s3Notifier delivers bucket events: to a function through the durable
// asynchronous path (retries, maximum age, destinations, dead-letter
// queues as for any Event invoke), or as a message to a queue.
type s3Notifier struct {
	region string
	reg    *registry.Registry
	async  *events.Async
	queues *queue.Manager
}

func (n *s3Notifier) Deliver(ctx context.Context, arn string, event []byte, id string) error {
	switch {
	case strings.HasPrefix(arn, "arn:aws:lambda:"):
		_, err := n.async.EnqueueOnce(ctx, arn, event, id)
		return err
	case strings.HasPrefix(arn, "arn:aws:sqs:"):
		name, err := queue.NameFromARN(arn)
		if err != nil {
			return err
		}
		res, err := n.queues.Send(ctx, name, []queue.SendEntry{{ID: "s3", Body: string(event)}})
		if err != nil {
			return err
		}
		if len(res) == 1 && res[0].Err != nil {
			return res[0].Err
		}
		return nil
	}
	return fmt.Errorf("not a function or queue ARN: %s", arn)
}

// Check: S3 delivers to a function whose resource policy lets
// s3.amazonaws.com invoke it (AddPermission), as on AWS; to a queue that
// exists (queue policies are kept, not evaluated, in Stratus).
func (n *s3Notifier) Check(arn, bucket string) error {
	switch {
	case strings.HasPrefix(arn, "arn:aws:lambda:"):
		name, q, err := function.ParseRef(arn)
		if err != nil {
			return err
		}
		fn, err := n.reg.Resolve(name, q)
		if err != nil {
			return errors.New("the function does not exist")
		}
		if !auth.AllowsService(n.reg.CompiledPolicy(name, q), "s3.amazonaws.com", "lambda:InvokeFunction", function.ARN(n.region, fn.Name, q),
			auth.Cond{Key: "aws:SourceArn", Values: []string{"arn:aws:s3:::" + bucket}}, auth.Cond{Key: "aws:SourceAccount", Values: []string{auth.Account}}) {
			return errors.New("the function's resource policy does not let s3.amazonaws.com invoke it (lambda add-permission --principal s3.amazonaws.com)")
		}
		return nil
	case strings.HasPrefix(arn, "arn:aws:sqs:"):
		name, err := queue.NameFromARN(arn)
		if err != nil {
			return err
		}
		if _, err := n.queues.Get(name); err != nil {
			return errors.New("the queue does not exist")
		}
		return nil
	}
	return errors.New("not a function or queue ARN")
}
