package amqp

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/nextpkg/vrpc/rpcbus"
)

const (
	// queueLen bounds the publishes waiting for the writer.
	queueLen = 1024
	// returnsLen is the buffer of basic.return notifications of a channel.
	// The library drops a notification nobody takes within 5s; every
	// publish drains the buffer once confirmed, so it only has to hold the
	// returns of the publishes in flight.
	returnsLen = 4096
	// maxReturned bounds the returned ids kept for publishers that have
	// not looked yet: those that gave up waiting never will.
	maxReturned = 4096
	// keyHeader carries Message.Key: AMQP messages have no key.
	keyHeader = "x-vrpc-key"
)

// pubReq is one Publish handed to the writer.
type pubReq struct {
	ctx context.Context
	key string // the routing key: the topic
	pub amqp.Publishing
	id  string
	res chan pubResult // buffered: the writer never waits for the caller
}

type pubResult struct {
	pc  *pubChannel
	dc  *amqp.DeferredConfirmation
	err error
}

var reqPool = sync.Pool{New: func() any { return &pubReq{res: make(chan pubResult, 1)} }}

// pubChannel is the writer's channel in confirm mode, with the returns of
// unroutable messages.
type pubChannel struct {
	ch      *amqp.Channel
	returns chan amqp.Return
	closes  chan *amqp.Error

	mu       sync.Mutex
	returned map[string]struct{} // MessageIds returned, not yet looked up
	why      *amqp.Error         // why the broker closed the channel
}

// closeReason returns the broker's reason for closing the channel, if it
// did. The library passes it on before it fails the confirmations waiting,
// so a publisher that saw its confirmation fail finds it here.
func (pc *pubChannel) closeReason() *amqp.Error {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.why == nil {
		select {
		case e, ok := <-pc.closes:
			if ok {
				pc.why = e
			}
		default:
		}
	}
	return pc.why
}

// wasReturned reports whether the broker returned the message with id as
// unroutable. The broker sends basic.return before the basic.ack of the
// same message, and the library passes both on from one goroutine in that
// order, so once the confirmation is in, a return for it is in the buffer
// (or already moved to the map by another publisher).
func (pc *pubChannel) wasReturned(id string) bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
drain:
	for {
		select {
		case r, ok := <-pc.returns:
			if !ok { // the channel closed
				break drain
			}
			if len(pc.returned) >= maxReturned {
				clear(pc.returned)
			}
			pc.returned[r.MessageId] = struct{}{}
		default:
			break drain
		}
	}
	if _, ok := pc.returned[id]; ok {
		delete(pc.returned, id)
		return true
	}
	return false
}

// writer owns the publishing channel: every publish goes through its one
// goroutine, so a publish stuck writing to a broker that stopped reading
// (a resource alarm, a half-open connection) never holds its caller past
// its context, and the channel is reopened in one place.
type writer struct {
	b     *Bus
	queue chan *pubReq
	pc    *pubChannel // the current channel, used by run only
	done  chan struct{}
}

func newWriter(b *Bus) *writer {
	w := &writer{b: b, queue: make(chan *pubReq, queueLen), done: make(chan struct{})}
	go w.run()
	return w
}

func (w *writer) run() {
	defer close(w.done)
	for {
		select {
		case r := <-w.queue:
			r.res <- w.send(r)
		case <-w.b.pub.stop:
			for {
				select {
				case r := <-w.queue:
					r.res <- pubResult{err: rpcbus.ErrClosed}
				default:
					return
				}
			}
		}
	}
}

func (w *writer) send(r *pubReq) pubResult {
	if err := r.ctx.Err(); err != nil {
		return pubResult{err: err}
	}
	pc, err := w.channel(r.ctx)
	if err != nil {
		return pubResult{err: err}
	}
	dc, err := pc.ch.PublishWithDeferredConfirm(w.b.o.Exchange, r.key, true, false, r.pub)
	if err != nil {
		w.pc = nil
		_ = pc.ch.Close()
		return pubResult{err: fmt.Errorf("the channel failed: %w: %w", rpcbus.ErrUnavailable, err)}
	}
	return pubResult{pc: pc, dc: dc}
}

// channel returns the open publishing channel, opening one (and waiting
// for a connection) if need be.
func (w *writer) channel(ctx context.Context) (*pubChannel, error) {
	if w.pc != nil && !w.pc.ch.IsClosed() {
		return w.pc, nil
	}
	w.pc = nil
	bo := w.b.pub.backoff()
	for {
		conn, err := w.b.pub.get(ctx)
		if err != nil {
			return nil, err
		}
		pc, err := w.b.openPubChannel(conn)
		if err == nil {
			w.pc = pc
			return pc, nil
		}
		if permanent(err) {
			if r := refusal(err, w.b.pub.o); r != nil {
				err = r
			}
			return nil, err
		}
		if !w.b.pub.pause(ctx, bo) {
			if ctx.Err() == nil {
				return nil, rpcbus.ErrClosed
			}
			return nil, w.b.pub.notConnected(fmt.Errorf("%w (opening a channel: %w)", ctx.Err(), err))
		}
	}
}

func (b *Bus) openPubChannel(conn *amqp.Connection) (*pubChannel, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	if err := b.declareExchange(ch); err != nil {
		return nil, err
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, err
	}
	return &pubChannel{
		ch:       ch,
		returns:  ch.NotifyReturn(make(chan amqp.Return, returnsLen)),
		closes:   ch.NotifyClose(make(chan *amqp.Error, 1)),
		returned: make(map[string]struct{}),
	}, nil
}

// Publish sends msg to topic through the bus's exchange, routed by the
// topic to the queue of every group subscribed to it (or to the inboxes
// with that address), and waits for the broker's confirmation, or ctx, or
// confirm_timeout. Messages are persistent unless the persistent setting
// is false: a durable queue keeps them across broker restarts.
//
// It returns an error wrapping rpcbus.ErrUnknownTopic when no queue is
// bound to topic (no group has ever subscribed to it, or the inbox is
// gone): the message is published as mandatory, and the broker returns it.
// A message larger than max_message_bytes gives an error wrapping
// rpcbus.ErrMessageTooLarge without being sent. While the bus is
// reconnecting, Publish waits for the connection until ctx ends, then
// returns an error wrapping rpcbus.ErrUnavailable and ctx's error.
//
// If ctx ends first, the message may still be sent, and msg's byte slices
// must not be modified until then.
func (b *Bus) Publish(ctx context.Context, topic string, msg *rpcbus.Message) error {
	b.inflight.Add(1)
	defer b.inflight.Add(-1)
	if b.open.Closed() {
		return rpcbus.ErrClosed
	}
	if topic == "" || len(topic) > maxNameBytes {
		return fmt.Errorf("amqp: publish to %q: a topic is 1 to %d bytes", topic, maxNameBytes)
	}
	size := len(msg.Key) + len(msg.Value)
	for k, v := range msg.Headers {
		size += len(k) + len(v)
	}
	if size > b.o.MaxMessageBytes {
		return fmt.Errorf("amqp: publish %d bytes to %q: %w (max_message_bytes is %d)",
			size, topic, rpcbus.ErrMessageTooLarge, b.o.MaxMessageBytes)
	}

	id := strconv.FormatUint(b.ids.Add(1), 36)
	r := reqPool.Get().(*pubReq)
	r.ctx, r.key, r.id = ctx, topic, id
	r.pub = amqp.Publishing{
		Body:         msg.Value,
		DeliveryMode: b.deliveryMode,
		MessageId:    id,
	}
	if len(msg.Headers) > 0 || msg.Key != nil {
		if _, ok := msg.Headers[keyHeader]; ok {
			reqPool.Put(r)
			return fmt.Errorf("amqp: publish to %q: header %s is reserved for the message key", topic, keyHeader)
		}
		t := make(amqp.Table, len(msg.Headers)+1)
		for k, v := range msg.Headers {
			t[k] = v
		}
		if msg.Key != nil {
			t[keyHeader] = msg.Key
		}
		r.pub.Headers = t
	}

	select {
	case b.w.queue <- r:
	case <-ctx.Done():
		reqPool.Put(r) // the writer never saw it
		return b.publishWaitError(topic, ctx.Err())
	}
	var res pubResult
	select {
	case res = <-r.res:
		r.ctx, r.pub = nil, amqp.Publishing{}
		reqPool.Put(r) // the writer is done with it
	case <-ctx.Done():
		// The writer still owns r: leave it to the garbage collector.
		return b.publishWaitError(topic, ctx.Err())
	}
	if res.err != nil {
		return b.publishError(topic, res.err)
	}
	return b.confirm(ctx, topic, size, id, res)
}

// confirm waits for the broker's confirmation of a published message.
func (b *Bus) confirm(ctx context.Context, topic string, size int, id string, res pubResult) error {
	var timeout <-chan time.Time
	ct := time.Duration(b.o.ConfirmTimeout)
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > ct {
		t := time.NewTimer(ct)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-res.dc.Done():
	case <-ctx.Done():
		return b.publishWaitError(topic, ctx.Err())
	case <-timeout:
		return fmt.Errorf("amqp: publish to %q: no confirmation from the broker within confirm_timeout %v", topic, ct)
	}
	if !res.dc.Acked() {
		if res.pc.ch.IsClosed() {
			if b.open.Closed() {
				return rpcbus.ErrClosed
			}
			why := res.pc.closeReason()
			if why != nil && why.Code == amqp.PreconditionFailed && strings.Contains(why.Reason, "max size") {
				return fmt.Errorf("amqp: publish %d bytes to %q: %w (the broker's max_message_size is lower than max_message_bytes %d): %w",
					size, topic, rpcbus.ErrMessageTooLarge, b.o.MaxMessageBytes, why)
			}
			// The channel or connection went away before the
			// confirmation: the message may or may not have been taken.
			if why != nil {
				return fmt.Errorf("amqp: publish to %q: %w (the channel closed before the broker confirmed: %w)", topic, rpcbus.ErrUnavailable, why)
			}
			return fmt.Errorf("amqp: publish to %q: %w (the channel closed before the broker confirmed)", topic, rpcbus.ErrUnavailable)
		}
		return fmt.Errorf("amqp: publish to %q: %w", topic, ErrNacked)
	}
	if res.pc.wasReturned(id) {
		return fmt.Errorf("amqp: publish to %q: %w (no queue is bound to it: no group has subscribed to the topic, or the inbox is gone)",
			topic, rpcbus.ErrUnknownTopic)
	}
	return nil
}

// publishWaitError is the error of a publish whose context ended while it
// waited for the writer or the broker.
func (b *Bus) publishWaitError(topic string, cause error) error {
	if !b.pub.isUp() {
		return b.pub.notConnected(fmt.Errorf("publish to %q: %w", topic, cause))
	}
	if reason := b.pub.blockedReason(); reason != "" {
		return fmt.Errorf("amqp: publish to %q: the broker blocks publishing (%s): %w", topic, reason, cause)
	}
	return fmt.Errorf("amqp: publish to %q: %w", topic, cause)
}

func (b *Bus) publishError(topic string, err error) error {
	switch {
	case errors.Is(err, rpcbus.ErrClosed):
		return rpcbus.ErrClosed
	case errors.Is(err, rpcbus.ErrUnavailable):
		return fmt.Errorf("amqp: publish to %q: %w", topic, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return b.publishWaitError(topic, err)
	}
	return fmt.Errorf("amqp: publish to %q: %w", topic, err)
}
