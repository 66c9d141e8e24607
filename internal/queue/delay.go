package queue

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stratus-faas/stratus/internal/store"
)

// delayMover moves delayed messages into their queue once due. Nodes share
// its consumer; a message not yet due is handed back to the store with a
// delay of the time left, so nothing polls.
type delayMover struct {
	m  *Manager
	cc jetstream.ConsumeContext
}

const delayConsumer = "stratus-sqs-delay"

func startDelayMover(ctx context.Context, m *Manager) (*delayMover, error) {
	c, err := m.st.JS.CreateOrUpdateConsumer(ctx, store.DelayStream, jetstream.ConsumerConfig{
		Durable:       delayConsumer,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxAckPending: 100000,
		FilterSubject: store.DelaySubject + ">",
	})
	if err != nil {
		return nil, fmt.Errorf("delay consumer: %w", err)
	}
	d := &delayMover{m: m}
	d.cc, err = c.Consume(d.handle, store.PullOptions...)
	if err != nil {
		return nil, fmt.Errorf("delay consume: %w", err)
	}
	return d, nil
}

func (d *delayMover) stop() { d.cc.Stop() }

func (d *delayMover) handle(msg jetstream.Msg) {
	queue := strings.TrimPrefix(msg.Subject(), store.DelaySubject)
	due, _ := strconv.ParseInt(msg.Headers().Get(headerVisibleAt), 10, 64)
	if left := time.Until(time.UnixMilli(due)); left > 0 {
		_ = msg.NakWithDelay(left)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := d.m.Get(queue); err != nil {
		_ = msg.Term() // the queue is gone
		return
	}
	md, err := msg.Metadata()
	if err != nil {
		_ = msg.Nak()
		return
	}
	out := nats.NewMsg(store.QueueSubject + queue)
	out.Data = msg.Data()
	// A move repeated after a crash between store and ack is dropped.
	out.Header.Set(jetstream.MsgIDHeader, "delay."+strconv.FormatUint(md.Sequence.Stream, 10))
	if _, err := d.m.st.JS.PublishMsg(ctx, out); err != nil {
		d.m.opts.Log.Warn("queue: moving a delayed message failed; retrying", "queue", queue, "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	_ = msg.DoubleAck(ctx)
}
