package esm

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/invoke"
	"github.com/stratus-faas/stratus/internal/outcome"
	"github.com/stratus-faas/stratus/internal/queue"
	"github.com/stratus-faas/stratus/internal/recursion"
	"github.com/stratus-faas/stratus/internal/registry"
)

const (
	// longPoll is each poller's wait for messages: SQS's longest, so an
	// idle mapping costs one pending pull per node and no CPU.
	longPoll = 20 * time.Second
	// maxPayload keeps a batch's event under Lambda's 6 MB request limit.
	maxPayload = 6*1024*1024 - 64*1024
	// grace is how long a stopping runner lets a running batch finish.
	grace = 10 * time.Second
)

// runner polls one mapping on this node: one poller to begin with, one
// more for each full batch (a backlog), down to one again when polls come
// back empty.
type runner struct {
	m     *Manager
	mp    Mapping
	queue string
	arn   string
	max   int32

	pollCtx    context.Context // cancelled to stop polling
	stopPoll   context.CancelFunc
	invokeCtx  context.Context // cancelled once grace runs out
	stopInvoke context.CancelFunc
	wg         sync.WaitGroup
	pollers    atomic.Int32
}

func newRunner(m *Manager, mp Mapping) *runner {
	r := &runner{m: m, mp: mp, arn: mp.EventSourceArn, max: DefaultMaxPollers}
	r.queue, _ = queue.NameFromARN(mp.EventSourceArn)
	if mp.MaximumConcurrency > 0 {
		r.max = int32(mp.MaximumConcurrency)
	}
	r.pollCtx, r.stopPoll = context.WithCancel(context.Background())
	r.invokeCtx, r.stopInvoke = context.WithCancel(context.Background())
	return r
}

func (r *runner) start() { r.spawn() }

// stop ends polling and lets a running batch finish until ctx ends; then
// its invocation is cancelled and the batch returns to the queue after its
// visibility timeout.
func (r *runner) stop(ctx context.Context) {
	r.stopPoll()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		r.stopInvoke()
		<-done
	}
	r.stopInvoke()
}

// stopWithGrace stops a runner replaced or removed by a change.
func (r *runner) stopWithGrace() {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	r.stop(ctx)
}

// spawn adds a poller unless at the limit.
func (r *runner) spawn() {
	for {
		n := r.pollers.Load()
		if n >= r.max {
			return
		}
		if r.pollers.CompareAndSwap(n, n+1) {
			r.wg.Go(r.poll)
			return
		}
	}
}

// retire ends a poller when others remain; the last one stays.
func (r *runner) retire() bool {
	for {
		n := r.pollers.Load()
		if n <= 1 {
			return false
		}
		if r.pollers.CompareAndSwap(n, n-1) {
			return true
		}
	}
}

func (r *runner) poll() {
	for r.pollCtx.Err() == nil {
		msgs, err := r.collect()
		if err != nil {
			r.m.setProblem(r.mp.UUID, "PROBLEM: "+err.Error())
			// What was taken before the failure is still ours to deliver.
			if len(msgs) > 0 {
				r.process(msgs)
			}
			r.pause(5 * time.Second)
			continue
		}
		r.m.setProblem(r.mp.UUID, "")
		if len(msgs) == 0 {
			if r.retire() {
				return
			}
			continue
		}
		if len(msgs) >= min(r.mp.BatchSize, queue.MaxReceive) {
			r.spawn() // a full batch: there is a backlog
		}
		r.process(msgs)
	}
	r.pollers.Add(-1)
}

func (r *runner) pause(d time.Duration) {
	select {
	case <-r.pollCtx.Done():
	case <-time.After(d):
	}
}

// visibility is how long a batch stays hidden: the queue's timeout, or
// longer when the function may run past it (as Lambda does).
func (r *runner) visibility() *int {
	q, err := r.m.queues.Get(r.queue)
	if err != nil {
		return nil
	}
	need := r.mp.Window
	if fn, err := r.m.inv.Resolve(r.mp.Function, r.mp.Qualifier); err == nil {
		need += fn.Timeout
	}
	if need <= q.Attrs.VisibilityTimeout {
		return nil
	}
	v := min(need+30, queue.MaxVisibility)
	return &v
}

// collect waits for messages, then, with a batching window, keeps
// gathering until the batch is full or the window closes.
func (r *runner) collect() ([]queue.Message, error) {
	vis := r.visibility()
	msgs, err := r.m.queues.Receive(r.pollCtx, r.queue, queue.ReceiveOptions{Max: r.mp.BatchSize, Wait: longPoll, Visibility: vis})
	if err != nil {
		return msgs, err
	}
	if len(msgs) == 0 || r.mp.Window == 0 {
		return msgs, nil
	}
	until := time.Now().Add(time.Duration(r.mp.Window) * time.Second)
	for len(msgs) < r.mp.BatchSize {
		left := time.Until(until)
		if left <= 0 || r.pollCtx.Err() != nil {
			break
		}
		more, err := r.m.queues.Receive(r.pollCtx, r.queue, queue.ReceiveOptions{Max: r.mp.BatchSize - len(msgs), Wait: left, Visibility: vis})
		msgs = append(msgs, more...)
		if err != nil {
			break
		}
	}
	return msgs, nil
}

// record is one message in Lambda's SQS event.
type record struct {
	MessageID         string               `json:"messageId"`
	ReceiptHandle     string               `json:"receiptHandle"`
	Body              string               `json:"body"`
	Attributes        map[string]string    `json:"attributes"`
	MessageAttributes map[string]attribute `json:"messageAttributes"`
	MD5OfBody         string               `json:"md5OfBody"`
	MD5OfAttributes   *string              `json:"md5OfMessageAttributes"`
	EventSource       string               `json:"eventSource"`
	EventSourceARN    string               `json:"eventSourceARN"`
	AWSRegion         string               `json:"awsRegion"`
}

type attribute struct {
	StringValue      *string  `json:"stringValue,omitempty"`
	BinaryValue      []byte   `json:"binaryValue,omitempty"`
	StringListValues []string `json:"stringListValues"`
	BinaryListValues [][]byte `json:"binaryListValues"`
	DataType         string   `json:"dataType"`
}

// event builds the function's event; messages past the payload limit are
// released at once for a later batch.
func (r *runner) event(msgs []queue.Message) ([]byte, []queue.Message) {
	recs := make([]record, 0, len(msgs))
	size := 0
	kept := msgs
	for i, m := range msgs {
		rec := record{
			MessageID: m.MessageID, ReceiptHandle: m.ReceiptHandle, Body: m.Body,
			Attributes: m.Attributes, MessageAttributes: map[string]attribute{},
			MD5OfBody: m.MD5OfBody, EventSource: "aws:sqs", EventSourceARN: r.arn, AWSRegion: r.m.queues.Region(),
		}
		if m.MD5OfAttributes != "" {
			rec.MD5OfAttributes = &m.MD5OfAttributes
		}
		for k, v := range m.MessageAttributes {
			rec.MessageAttributes[k] = attribute{StringValue: v.StringValue, BinaryValue: v.BinaryValue,
				StringListValues: nonNil(v.StringListValues), BinaryListValues: nonNilB(v.BinaryListValues), DataType: v.DataType}
		}
		// Bodies grow when escaped: count them twice to stay safe.
		size += 2*m.Size + 1024
		if i > 0 && size > maxPayload {
			kept = msgs[:i]
			for _, rest := range msgs[i:] {
				_ = r.m.queues.ChangeVisibility(r.invokeCtx, r.queue, rest.ReceiptHandle, 0)
			}
			break
		}
		recs = append(recs, rec)
	}
	b, _ := json.Marshal(map[string]any{"Records": recs})
	return b, kept
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilB(s [][]byte) [][]byte {
	if s == nil {
		return [][]byte{}
	}
	return s
}

// process invokes the function with a batch and deletes what it handled.
// A failed batch is left alone: its messages return after the visibility
// timeout and, past maxReceiveCount, go to the queue's dead-letter queue.
func (r *runner) process(msgs []queue.Message) {
	msgs, trace := r.unlooped(msgs)
	if len(msgs) == 0 {
		return
	}
	payload, msgs := r.event(msgs)
	resp, err := r.m.inv.Invoke(r.invokeCtx, invoke.Request{FunctionName: r.mp.Function, Qualifier: r.mp.Qualifier, Payload: payload, TraceID: trace})
	var thr *invoke.ThrottleError
	switch {
	case errors.Is(err, invoke.ErrRecursiveLoop):
		// The setting changed since unlooped looked: the batch returns
		// after its visibility timeout and is looked at again.
		return
	case errors.As(err, &thr):
		r.m.setResult(r.mp.UUID, "PROBLEM: Function call throttled")
		r.pause(time.Second)
		return
	case errors.Is(err, registry.ErrNotFound):
		r.m.setResult(r.mp.UUID, "PROBLEM: Function not found")
		r.pause(5 * time.Second)
		return
	case err != nil:
		r.m.log.Warn("event source mapping: invoke failed", "uuid", r.mp.UUID, "function", r.mp.Function, "err", err)
		r.m.setResult(r.mp.UUID, "PROBLEM: Function call failed")
		r.pause(time.Second)
		return
	case resp.Outcome == outcome.Cancelled:
		// Cut off by shutdown: the batch returns after its visibility
		// timeout, as any batch whose poller went away. (Making it visible
		// at once would not survive a restart of the embedded store, which
		// keeps the delivery's first deadline.)
		return
	case resp.Outcome.Failed():
		r.m.setResult(r.mp.UUID, "PROBLEM: Function call failed")
		return
	}
	done := msgs
	if r.mp.ReportItemFailures {
		failed, ok := itemFailures(resp.Payload, msgs)
		if !ok {
			r.m.setResult(r.mp.UUID, "PROBLEM: Invalid batchItemFailures in function response")
			return
		}
		done = done[:0:0]
		for _, m := range msgs {
			if !failed[m.MessageID] {
				done = append(done, m)
			}
		}
	}
	r.deleteAll(done)
	r.m.setResult(r.mp.UUID, "OK")
}

// itemFailures reads a partial batch response. Lambda's rules: an empty
// or null list is success; a malformed response, an empty identifier or
// one not in the batch fails the whole batch (ok false).
func itemFailures(payload []byte, msgs []queue.Message) (map[string]bool, bool) {
	failed := map[string]bool{}
	if len(payload) == 0 || string(payload) == "null" {
		return failed, true
	}
	var resp struct {
		Failures *[]struct {
			ID *string `json:"itemIdentifier"`
		} `json:"batchItemFailures"`
	}
	if err := json.Unmarshal(payload, &resp); err != nil {
		// A response that is not an object (a string, a number) is not a
		// partial-batch report: success.
		var any json.RawMessage
		return failed, json.Unmarshal(payload, &any) == nil && payload[0] != '{'
	}
	if resp.Failures == nil {
		return failed, true
	}
	ids := make(map[string]bool, len(msgs))
	for _, m := range msgs {
		ids[m.MessageID] = true
	}
	for _, f := range *resp.Failures {
		if f.ID == nil || *f.ID == "" || !ids[*f.ID] {
			return nil, false
		}
		failed[*f.ID] = true
	}
	return failed, true
}

func (r *runner) deleteAll(msgs []queue.Message) {
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, m := range msgs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := r.m.queues.DeleteMessage(r.invokeCtx, r.queue, m.ReceiptHandle); err != nil {
				r.m.log.Warn("event source mapping: delete failed; the message will be processed again", "queue", r.queue, "err", err)
			}
		})
	}
	wg.Wait()
}

// unlooped takes out of a batch the messages whose event has run the
// function as often as a recursive loop may: they go to the queue's
// dead-letter queue if it has one and are deleted, as Lambda stops a loop
// through SQS. The rest run with the trace of the one furthest along its
// lineage, so the count goes on.
func (r *runner) unlooped(msgs []queue.Message) ([]queue.Message, string) {
	kept := msgs[:0:0]
	trace, depth := "", -1
	name, _, _ := function.ParseRef(r.mp.Function)
	for _, m := range msgs {
		th := ""
		if a, ok := m.SystemAttributes["AWSTraceHeader"]; ok && a.StringValue != nil {
			th = *a.StringValue
		}
		if th != "" && r.m.inv.StopLoop(th, r.mp.Function) {
			r.stopLoop(m)
			continue
		}
		if d := recursion.Depth(th, name); d > depth {
			trace, depth = th, d
		}
		kept = append(kept, m)
	}
	return kept, trace
}

func (r *runner) stopLoop(m queue.Message) {
	if q, err := r.m.queues.Get(r.queue); err == nil && q.Attrs.Redrive != nil {
		dlq, err := queue.NameFromARN(q.Attrs.Redrive.DeadLetterTargetArn)
		if err == nil {
			res, err := r.m.queues.Send(r.invokeCtx, dlq, []queue.SendEntry{{Body: m.Body, Attributes: m.MessageAttributes, System: m.SystemAttributes}})
			if err == nil {
				err = res[0].Err
			}
			if err != nil {
				// Kept: it returns after its visibility timeout to try again.
				r.m.log.Error("event source mapping: could not dead-letter a looping message", "queue", r.queue, "err", err)
				return
			}
		}
	}
	_ = r.m.queues.DeleteMessage(r.invokeCtx, r.queue, m.ReceiptHandle)
}
