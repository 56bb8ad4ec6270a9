package amqp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/nextpkg/vrpc/internal/closeset"
	"github.com/nextpkg/vrpc/internal/settings"
	"github.com/nextpkg/vrpc/rpcbus"
)

func init() {
	rpcbus.Register("amqp", func(cfg rpcbus.Config) (rpcbus.Bus, error) {
		b, err := New(cfg)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return b, nil
	})
}

// flushTimeout bounds how long Close waits for publishes in flight.
const flushTimeout = 5 * time.Second

// Bus is a vRPC bus on RabbitMQ (AMQP 0-9-1). It implements rpcbus.Bus,
// rpcbus.Inboxer, rpcbus.TopicCreator, rpcbus.Pinger, rpcbus.Addresser and
// rpcbus.Remover; its subscriptions rpcbus.StatusReporter. All its methods
// are safe for concurrent use.
type Bus struct {
	o     options
	addrs []string
	pub   *link // publishing: the writer's channel, declarations
	sub   *link // consuming: subscriptions and inboxes, and their acks
	w     *writer

	deliveryMode uint8 // of every message: persistent unless persistent is false

	ids      atomic.Uint64 // MessageIds, to match returns to publishes
	inflight atomic.Int64  // publishes under way, for Close

	open closeset.Set[closeset.Closer] // subscriptions and inboxes not yet closed

	// onDeclare, if set, is told the name of every durable queue the bus
	// declares (tests delete them afterwards).
	onDeclare func(queue string)
}

var _ interface {
	rpcbus.Bus
	rpcbus.Inboxer
	rpcbus.TopicCreator
	rpcbus.Pinger
} = (*Bus)(nil)

// New returns a bus of type amqp: a client of the RabbitMQ brokers in
// cfg.Brokers (host:port or amqp:// and amqps:// URIs, default
// 127.0.0.1:5672) configured by
// cfg.Settings, described in the package documentation. It starts
// connecting at once, in the background: calls wait for the connection
// until their context ends.
func New(cfg rpcbus.Config) (*Bus, error) {
	o, err := decodeOptions(cfg.Settings)
	if err != nil {
		return nil, err
	}
	brokers, err := parseBrokers(cfg.Brokers, o.useTLS())
	if err != nil {
		return nil, err
	}
	if o.tls == nil && slices.ContainsFunc(brokers, func(br broker) bool { return br.tls }) {
		// amqps:// without tls_* keys: the defaults, which cannot fail.
		o.tls, _ = (&settings.TLS{TLS: true}).Config()
	}
	addrs := make([]string, len(brokers))
	for i, br := range brokers {
		addrs[i] = br.addr
	}
	b := &Bus{o: o, addrs: addrs, deliveryMode: amqp.Persistent}
	if !o.Persistent {
		b.deliveryMode = amqp.Transient
	}
	// Two connections, as RabbitMQ advises: when the broker throttles or
	// blocks a publishing connection, the acknowledgements of consumers,
	// on the other one, still flow.
	b.pub = newLink("publish", brokers, &b.o)
	b.sub = newLink("consume", brokers, &b.o)
	b.w = newWriter(b)
	return b, nil
}

// Brokers returns the addresses the bus connects to, in the order it tries
// them.
func (b *Bus) Brokers() []string { return slices.Clone(b.addrs) }

// Exchange returns the name of the exchange the bus publishes to.
func (b *Bus) Exchange() string { return b.o.Exchange }

// declareExchange declares the bus's exchange on ch: a durable direct
// exchange that routes each message by its topic. On error ch is closed.
func (b *Bus) declareExchange(ch *amqp.Channel) error {
	if err := ch.ExchangeDeclare(b.o.Exchange, amqp.ExchangeDirect, true, false, false, false, nil); err != nil {
		_ = ch.Close()
		return fmt.Errorf("declaring exchange %q: %w", b.o.Exchange, err)
	}
	return nil
}

// CreateTopics declares the bus's exchange and checks the topic names. On
// AMQP a topic is a routing key: it exists once a group has subscribed to it
// (its queue is bound to the exchange), and a message published before
// then is refused with rpcbus.ErrUnknownTopic rather than kept. The queue
// of a group outlives its members, so once a group has subscribed, what is
// published while none of them runs waits for them in its queue.
func (b *Bus) CreateTopics(ctx context.Context, topics ...string) error {
	if b.open.Closed() {
		return rpcbus.ErrClosed
	}
	for _, t := range topics {
		if t == "" || len(t) > maxNameBytes {
			return fmt.Errorf("amqp: topic %q: a topic is 1 to %d bytes", t, maxNameBytes)
		}
	}
	return b.withChannel(ctx, "creating topics", b.declareExchange)
}

// withChannel runs f on a channel of its own on the publishing connection,
// retrying with backoff while the connection is down or lost, until ctx
// ends. Errors the broker will not change its mind about are returned at
// once.
func (b *Bus) withChannel(ctx context.Context, what string, f func(ch *amqp.Channel) error) error {
	bo := b.pub.backoff()
	for {
		conn, err := b.pub.get(ctx)
		if err != nil {
			return fmt.Errorf("amqp: %s: %w", what, err)
		}
		ch, err := conn.Channel()
		if err == nil {
			err = f(ch)
			if err == nil {
				_ = ch.Close()
				return nil
			}
		}
		if permanent(err) {
			if r := refusal(err, b.pub.o); r != nil {
				err = r
			}
			return fmt.Errorf("amqp: %s: %w", what, err)
		}
		if !b.pub.pause(ctx, bo) {
			if ctx.Err() == nil {
				return rpcbus.ErrClosed
			}
			return fmt.Errorf("amqp: %s: %w", what, b.pub.notConnected(fmt.Errorf("%w (%w)", ctx.Err(), err)))
		}
	}
}

// Ping returns nil once both connections of the bus are open. While the
// bus is reconnecting it waits until ctx ends, then returns an error
// wrapping rpcbus.ErrUnavailable with the last connection failure.
func (b *Bus) Ping(ctx context.Context) error {
	if b.open.Closed() {
		return rpcbus.ErrClosed
	}
	for _, l := range []*link{b.pub, b.sub} {
		if _, err := l.get(ctx); err != nil {
			return fmt.Errorf("amqp: ping: %w", err)
		}
	}
	return nil
}

// permanent reports whether err is the broker refusing something it will
// go on refusing (permissions, a queue declared with other arguments, a
// missing virtual host), rather than a connection problem.
func permanent(err error) bool {
	var ae *amqp.Error
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.Code {
	case amqp.AccessRefused, amqp.NotFound, amqp.PreconditionFailed, amqp.NotAllowed, amqp.NotImplemented, amqp.CommandInvalid, amqp.SyntaxError:
		return true
	}
	return false
}

// queueName is the durable queue of group on topic. ':' cannot be part of
// a valid topic or group name (rpcbus.ValidName), so no two pairs share a
// queue.
func queueName(topic, group string) string {
	return fitName(topic + ":" + group)
}

// fitName shortens a name longer than AMQP allows, keeping it unique with
// a hash of the whole.
func fitName(n string) string {
	if len(n) <= maxNameBytes {
		return n
	}
	sum := sha256.Sum256([]byte(n))
	return n[:maxNameBytes-17] + "~" + hex.EncodeToString(sum[:8])
}

// Close closes the subscriptions and inboxes still open (without waiting
// for unacknowledged deliveries, which the broker gives to other
// consumers), waits a few seconds for publishes in flight, then closes
// both connections. Calling it again does nothing.
func (b *Bus) Close() error {
	open, first := b.open.Close()
	if !first {
		return nil
	}

	for _, c := range open {
		c.CloseNow()
	}
	for deadline := time.Now().Add(flushTimeout); b.inflight.Load() > 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	b.pub.shutdown()
	<-b.w.done
	b.sub.shutdown()
	return nil
}
