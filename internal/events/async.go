// Package events runs event-driven invocation: asynchronous invokes,
// accepted into a durable JetStream work queue, run with Lambda's retries
// and maximum event age, and reported to success and failure destinations.
package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/invoke"
	"github.com/stratus-faas/stratus/internal/outcome"
	"github.com/stratus-faas/stratus/internal/queue"
	"github.com/stratus-faas/stratus/internal/recursion"
	"github.com/stratus-faas/stratus/internal/registry"
	"github.com/stratus-faas/stratus/internal/store"
)

const (
	consumerName = "stratus-async"
	// maxInFlight bounds the events a node runs at once.
	maxInFlight = 256
	// throttleDelay is the wait before retrying a throttled event.
	throttleDelay = time.Second
	// ackWait is how soon an event held by a node that died runs again;
	// a node running an event tells the store so every ackWait/3.
	ackWait = 30 * time.Second
)

// Options configure asynchronous invocation.
type Options struct {
	Region string
	// RetryDelay is the wait before the first retry after a function
	// error; the second waits twice as long (Lambda: about 1 and 2 minutes).
	RetryDelay time.Duration
	// Queues receive destination records and dead letters sent to SQS ARNs.
	Queues *queue.Manager
	// Metrics registers the event counters (nil: not exported).
	Metrics prometheus.Registerer
}

// Outcomes counted in stratus_async_events_total.
const (
	outcomeAccepted     = "accepted"
	outcomeSucceeded    = "succeeded"
	outcomeRetried      = "retried"   // function error, tried again later
	outcomeThrottled    = "throttled" // no capacity, tried again soon
	outcomeFailed       = "retries_exhausted"
	outcomeExpired      = "expired" // older than MaximumEventAgeInSeconds
	outcomeDeadLettered = "dead_lettered"
)

// conditionLoop is the destination record's condition of an event
// stopped in a recursive loop (Stratus's name: Lambda documents none).
const conditionLoop = "RecursiveInvocationDetected"

// Async accepts and runs asynchronous invocations.
type Async struct {
	st   *store.Store
	reg  *registry.Registry
	inv  *invoke.Invoker
	log  *slog.Logger
	opts Options
	now  func() time.Time

	cc     jetstream.ConsumeContext
	ctx    context.Context
	cancel context.CancelFunc
	sem    chan struct{}
	wg     sync.WaitGroup
	counts *prometheus.CounterVec
}

// event is one accepted asynchronous invocation, as stored.
type event struct {
	RequestID string          `json:"id"`
	Function  string          `json:"fn"`
	Qualifier string          `json:"q,omitempty"`
	Payload   json.RawMessage `json:"p"`
	Accepted  time.Time       `json:"t"`
	// Trace is the trace header of the request that sent it.
	Trace string `json:"tr,omitempty"`
}

// New returns the asynchronous invoker; Start begins running events.
func New(st *store.Store, reg *registry.Registry, inv *invoke.Invoker, log *slog.Logger, opts Options) *Async {
	if opts.RetryDelay <= 0 {
		opts.RetryDelay = time.Minute
	}
	ctx, cancel := context.WithCancel(context.Background())
	counts := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stratus_async_events_total", Help: "Asynchronous events by outcome (this node).",
	}, []string{"outcome"})
	if opts.Metrics != nil {
		opts.Metrics.MustRegister(counts)
	}
	return &Async{st: st, reg: reg, inv: inv, log: log, opts: opts, now: time.Now, ctx: ctx, cancel: cancel, sem: make(chan struct{}, maxInFlight), counts: counts}
}

// Enqueue accepts an event for ref (name, ARN or name:qualifier). It
// returns once the store has the event on disk.
func (a *Async) Enqueue(ctx context.Context, ref, qualifier string, payload []byte) (string, error) {
	id, _, err := a.enqueue(ctx, ref, qualifier, payload, "")
	return id, err
}

// EnqueueOnce accepts an event whose id several nodes may send: the store
// keeps the first (within its ten-minute duplicate window). first reports
// whether this call was it.
func (a *Async) EnqueueOnce(ctx context.Context, ref string, payload []byte, id string) (first bool, err error) {
	_, first, err = a.enqueue(ctx, ref, "", payload, id)
	return first, err
}

func (a *Async) enqueue(ctx context.Context, ref, qualifier string, payload []byte, msgID string) (string, bool, error) {
	fn, err := a.inv.Resolve(ref, qualifier)
	if err != nil {
		return "", false, err
	}
	if len(payload) > function.MaxAsyncPayload {
		return "", false, function.Errorf(function.ErrTooLarge, "Request must be smaller than %d bytes for the InvokeFunction operation", function.MaxAsyncPayload)
	}
	if len(payload) == 0 {
		payload = []byte("{}")
	} else if !json.Valid(payload) {
		return "", false, invoke.ErrInvalidContent
	}
	_, q, _ := function.ParseRef(ref)
	if qualifier != "" {
		q = qualifier
	}
	ev := event{RequestID: uuid.NewString(), Function: fn.Name, Qualifier: q, Payload: payload, Accepted: a.now().UTC(), Trace: recursion.Trace(ctx)}
	data, err := json.Marshal(&ev)
	if err != nil {
		return "", false, err
	}
	if msgID == "" {
		msgID = ev.RequestID
	}
	msg := nats.NewMsg(store.AsyncSubject + fn.Name)
	msg.Data = data
	msg.Header.Set(jetstream.MsgIDHeader, msgID)
	if err := a.st.Writable(); err != nil {
		return "", false, err
	}
	ack, err := a.st.JS.PublishMsg(ctx, msg)
	if err != nil {
		return "", false, fmt.Errorf("store event: %w", a.st.Failed(err))
	}
	a.counts.WithLabelValues(outcomeAccepted).Inc()
	return ev.RequestID, !ack.Duplicate, nil
}

// Stats are the node-independent state of the event queue and this
// node's counters.
type Stats struct {
	Pending   uint64             `json:"pending"`
	OldestAge float64            `json:"oldestAgeSeconds"`
	Counts    map[string]float64 `json:"counts"`
}

// Stats reads the event queue's depth and age and this node's counters.
func (a *Async) Stats(ctx context.Context) (Stats, error) {
	info, err := a.st.Async.Info(ctx)
	if err != nil {
		return Stats{}, fmt.Errorf("async stream: %w", err)
	}
	out := Stats{Pending: info.State.Msgs, Counts: map[string]float64{}}
	if info.State.Msgs > 0 {
		out.OldestAge = max(a.now().Sub(info.State.FirstTime).Seconds(), 0)
	}
	for _, o := range []string{outcomeAccepted, outcomeSucceeded, outcomeRetried, outcomeThrottled, outcomeFailed, outcomeExpired, outcomeDeadLettered} {
		var m dto.Metric
		if a.counts.WithLabelValues(o).Write(&m) == nil {
			out.Counts[o] = m.GetCounter().GetValue()
		}
	}
	return out, nil
}

// Start subscribes this node to the queue. Several nodes share it: each
// event goes to one.
func (a *Async) Start(ctx context.Context) error {
	cons, err := a.st.JS.CreateOrUpdateConsumer(ctx, store.AsyncStream, jetstream.ConsumerConfig{
		Durable:       consumerName,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxAckPending: maxInFlight * 4,
		FilterSubject: store.AsyncSubject + ">",
	})
	if err != nil {
		return fmt.Errorf("async consumer: %w", err)
	}
	a.cc, err = cons.Consume(func(msg jetstream.Msg) {
		a.sem <- struct{}{} // back pressure: the callback blocks while maxInFlight run
		a.wg.Go(func() {
			defer func() { <-a.sem }()
			a.handle(msg)
		})
	}, store.PullOptions...)
	if err != nil {
		return fmt.Errorf("async consume: %w", err)
	}
	return nil
}

// Stop stops taking events and lets those running finish until ctx
// ends; then they are cancelled and go back to the store, to run again
// later (at least once). Safe to call more than once.
func (a *Async) Stop(ctx context.Context) {
	if a.cc != nil {
		a.cc.Stop()
	}
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		a.cancel()
		<-done
	}
	a.cancel()
}

func (a *Async) handle(msg jetstream.Msg) {
	var ev event
	if err := json.Unmarshal(msg.Data(), &ev); err != nil {
		a.log.Error("dropping unreadable async event", "err", err)
		_ = msg.Term()
		return
	}
	md, err := msg.Metadata()
	if err != nil {
		_ = msg.Nak()
		return
	}
	attempt := int(md.NumDelivered)
	cfg := a.reg.EventConfig(ev.Function)
	// Keep the event ours while it runs (functions may run 15 minutes).
	stop := make(chan struct{})
	defer close(stop)
	a.wg.Go(func() {
		t := time.NewTicker(ackWait / 3)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				_ = msg.InProgress()
			case <-stop:
				return
			}
		}
	})
	if a.now().Sub(ev.Accepted) > cfg.MaxAge() {
		a.finish(msg, ev, cfg, "EventAgeExceeded", attempt-1, nil)
		return
	}
	resp, err := a.inv.Invoke(a.ctx, invoke.Request{FunctionName: ev.Function, Qualifier: ev.Qualifier, Payload: ev.Payload, TraceID: ev.Trace})
	var thr *invoke.ThrottleError
	switch {
	case errors.Is(err, invoke.ErrRecursiveLoop):
		// Stopped, not retried: to the failure destination and dead-letter
		// queue, as Lambda sends a looping event.
		a.finish(msg, ev, cfg, conditionLoop, attempt-1, nil)
	case errors.As(err, &thr), errors.Is(err, invoke.ErrShuttingDown), a.ctx.Err() != nil,
		err == nil && resp.Outcome == outcome.Cancelled:
		// Not the function's fault: wait and try again, up to the maximum age.
		a.counts.WithLabelValues(outcomeThrottled).Inc()
		_ = msg.NakWithDelay(throttleDelay)
	case errors.Is(err, registry.ErrNotFound):
		a.log.Warn("dropping async event of a deleted function", "function", ev.Function, "request", ev.RequestID)
		_ = msg.Term()
	case err != nil:
		a.log.Warn("async invocation failed", "function", ev.Function, "err", err)
		_ = msg.NakWithDelay(throttleDelay)
	case resp.Outcome.Failed():
		if attempt <= cfg.Retries() {
			a.counts.WithLabelValues(outcomeRetried).Inc()
			_ = msg.NakWithDelay(a.opts.RetryDelay * time.Duration(attempt))
			return
		}
		a.finish(msg, ev, cfg, "RetriesExhausted", attempt, resp)
	default:
		a.finish(msg, ev, cfg, "Success", attempt, resp)
	}
}

// finish reports the outcome to its destination, then removes the event.
func (a *Async) finish(msg jetstream.Msg, ev event, cfg *function.EventInvokeConfig, condition string, invokes int, resp *invoke.Response) {
	dest := ""
	if cfg != nil {
		dest = cfg.OnFailure
		if condition == "Success" {
			dest = cfg.OnSuccess
		}
	}
	if condition != "Success" {
		a.log.Warn("async event failed", "function", ev.Function, "request", ev.RequestID, "condition", condition, "destination", dest)
	}
	if dest != "" {
		if err := a.deliver(ev, dest, a.record(ev, condition, invokes, resp), nil); err != nil {
			// Keep the event: it is reported again when redelivered.
			a.log.Error("could not deliver to destination", "destination", dest, "err", err)
			_ = msg.NakWithDelay(throttleDelay)
			return
		}
	}
	if condition != "Success" {
		if err := a.deadLetter(ev, resp, condition); err != nil {
			a.log.Error("could not deliver to the dead-letter queue", "function", ev.Function, "err", err)
			_ = msg.NakWithDelay(throttleDelay)
			return
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := msg.DoubleAck(ctx); err != nil {
		a.log.Warn("ack of async event", "request", ev.RequestID, "err", err)
	}
	switch condition {
	case "Success":
		a.counts.WithLabelValues(outcomeSucceeded).Inc()
	case "EventAgeExceeded":
		a.counts.WithLabelValues(outcomeExpired).Inc()
	default:
		a.counts.WithLabelValues(outcomeFailed).Inc()
	}
}

// deliver sends a destination record or dead letter of ev to a queue or,
// as an asynchronous event, to a function; the trace (and loop count)
// goes on with it.
func (a *Async) deliver(ev event, dest string, body []byte, attrs map[string]queue.Attribute) error {
	ctx := recursion.WithTrace(a.ctx, ev.Trace)
	if !queue.IsARN(dest) {
		_, err := a.Enqueue(ctx, dest, "", body)
		return err
	}
	if a.opts.Queues == nil {
		return fmt.Errorf("no queues to deliver to %s", dest)
	}
	name, err := queue.NameFromARN(dest)
	if err != nil {
		return err
	}
	res, err := a.opts.Queues.Send(ctx, name, []queue.SendEntry{{Body: string(body), Attributes: attrs}})
	if err != nil {
		return err
	}
	return res[0].Err
}

// deadLetter sends a failed event to the function's DeadLetterConfig
// target, as Lambda does: the event itself, with the request id and error
// as message attributes.
func (a *Async) deadLetter(ev event, resp *invoke.Response, condition string) error {
	fn, err := a.inv.Resolve(ev.Function, ev.Qualifier)
	if err != nil || fn.DeadLetterTarget == "" {
		return nil
	}
	status, msg := "200", "Event age exceeded"
	if condition == conditionLoop {
		status, msg = "400", "Recursive invocation loop stopped"
	}
	if resp != nil {
		status = strconv.Itoa(resp.Status)
		var doc struct {
			Message string `json:"errorMessage"`
		}
		_ = json.Unmarshal(resp.Payload, &doc)
		msg = doc.Message
	}
	if len(msg) > 1024 {
		msg = msg[:1024]
	}
	str := func(s string) *string { return &s }
	attrs := map[string]queue.Attribute{
		"RequestID":    {DataType: "String", StringValue: str(ev.RequestID)},
		"ErrorCode":    {DataType: "Number", StringValue: str(status)},
		"ErrorMessage": {DataType: "String", StringValue: str(msg)},
	}
	if msg == "" {
		delete(attrs, "ErrorMessage")
	}
	if err := a.deliver(ev, fn.DeadLetterTarget, ev.Payload, attrs); err != nil {
		return err
	}
	a.counts.WithLabelValues(outcomeDeadLettered).Inc()
	return nil
}

// record is Lambda's destination record.
func (a *Async) record(ev event, condition string, invokes int, resp *invoke.Response) []byte {
	version := function.Latest
	if ev.Qualifier != "" {
		version = ev.Qualifier
	}
	rc := map[string]any{
		"requestId":              ev.RequestID,
		"functionArn":            function.ARN(a.opts.Region, ev.Function, version),
		"condition":              condition,
		"approximateInvokeCount": invokes,
	}
	out := map[string]any{
		"version":        "1.0",
		"timestamp":      a.now().UTC().Format("2006-01-02T15:04:05.000Z"),
		"requestContext": rc,
		"requestPayload": ev.Payload,
	}
	if resp != nil {
		respCtx := map[string]any{"statusCode": resp.Status, "executedVersion": resp.ExecutedVersion}
		if fe := resp.FunctionError(); fe != "" {
			respCtx["functionError"] = fe
		}
		out["responseContext"] = respCtx
		if json.Valid(resp.Payload) {
			out["responsePayload"] = json.RawMessage(resp.Payload)
		}
	}
	b, _ := json.Marshal(out)
	return b
}
