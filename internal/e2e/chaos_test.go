package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	ltypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// chaosConsumer reports the markers it handled: every record of a queue
// batch, or the marker of an asynchronous event.
const chaosConsumer = `
import json, os, urllib.request

def handler(event, context):
    if "Records" in event:
        marks = [r["body"] for r in event["Records"]]
    else:
        marks = [event["marker"]]
    urllib.request.urlopen(urllib.request.Request(os.environ["SINK"], data=json.dumps({"marks": marks}).encode(), method="POST"), timeout=5)
    return {}
`

// TestChaosKill9: thousands of queue messages and asynchronous events are
// sent while the server is killed with SIGKILL and restarted, again and
// again. Every message and event the server accepted is processed; the
// duplicates at-least-once delivery allows are counted.
func TestChaosKill9(t *testing.T) {
	const (
		messages = 2000
		events   = 300
		kills    = 4
	)
	sink := newJSONSink(t)
	s := startServer(t, "", "--host-network", "chaos-fn")
	c, lc := s.sqs(), s.lambda()
	ctx := context.Background()
	u := createQueue(t, c, "chaos", map[string]string{"VisibilityTimeout": "5"})
	createFunction(t, lc, "chaos-fn", makeZip(t, map[string][]byte{"app.py": []byte(chaosConsumer)}),
		fnOpts{runtime: "python3.11", handler: "app.handler", timeout: 3, env: map[string]string{"SINK": sink.URL}})
	// Bound the instances so that two cores keep up; throttled work waits.
	if _, err := lc.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{FunctionName: aws.String("chaos-fn"), ReservedConcurrentExecutions: aws.Int32(12)}); err != nil {
		t.Fatal(err)
	}
	if _, err := lc.CreateEventSourceMapping(ctx, &lambda.CreateEventSourceMappingInput{FunctionName: aws.String("chaos-fn"),
		EventSourceArn: aws.String(queueAttrs(t, c, u)["QueueArn"]), BatchSize: aws.Int32(10)}); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	accepted := map[string]bool{}
	accept := func(id string) {
		mu.Lock()
		accepted[id] = true
		mu.Unlock()
	}
	var senders sync.WaitGroup
	senders.Go(func() {
		for b := 0; b < messages/10; b++ {
			pending := map[string]bool{}
			for i := range 10 {
				pending[fmt.Sprintf("m-%05d", b*10+i)] = true
			}
			for len(pending) > 0 {
				var entries []types.SendMessageBatchRequestEntry
				for id := range pending {
					entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String(id), MessageBody: aws.String(id)})
				}
				out, err := c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &u, Entries: entries})
				if err != nil {
					time.Sleep(100 * time.Millisecond) // down: try again
					continue
				}
				for _, ok := range out.Successful {
					accept(*ok.Id)
					delete(pending, *ok.Id)
				}
			}
		}
	})
	senders.Go(func() {
		for i := range events {
			id := fmt.Sprintf("e-%05d", i)
			for {
				_, err := lc.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("chaos-fn"), InvocationType: ltypes.InvocationTypeEvent,
					Payload: []byte(`{"marker":"` + id + `"}`)})
				if err == nil {
					accept(id)
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	})
	sendersDone := make(chan struct{})
	go func() { senders.Wait(); close(sendersDone) }()

	for k := range kills {
		time.Sleep(time.Duration(1500+500*k) * time.Millisecond)
		s.kill()
		time.Sleep(200 * time.Millisecond)
		s.restart()
	}
	select {
	case <-sendersDone:
	case <-time.After(5 * time.Minute):
		t.Fatal("senders did not finish")
	}

	seen := func() map[string]int {
		out := map[string]int{}
		for _, m := range sink.snapshot() {
			marks, _ := m["marks"].([]any)
			for _, x := range marks {
				out[x.(string)]++
			}
		}
		return out
	}
	missing := 0
	waitFor(t, 4*time.Minute, "every accepted message and event to be processed", func() bool {
		got := seen()
		mu.Lock()
		defer mu.Unlock()
		missing = 0
		for id := range accepted {
			if got[id] == 0 {
				missing++
			}
		}
		return missing == 0
	})
	got := seen()
	dups, total := 0, 0
	for _, n := range got {
		total += n
		dups += n - 1
	}
	mu.Lock()
	n := len(accepted)
	mu.Unlock()
	if n != messages+events {
		t.Fatalf("accepted %d of %d", n, messages+events)
	}
	t.Logf("chaos: %d kills; %d accepted, all processed; %d runs, %d duplicates (%.1f%%)", kills, n, total, dups, 100*float64(dups)/float64(n))
}
