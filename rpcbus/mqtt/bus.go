package mqtt

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/nextpkg/vrpc/internal/closeset"
	"github.com/nextpkg/vrpc/rpcbus"
)

func init() {
	rpcbus.Register("mqtt", func(cfg rpcbus.Config) (rpcbus.Bus, error) {
		b, err := New(cfg)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return b, nil
	})
}

const (
	// closeTimeout bounds what Close sends the broker on the way out: the
	// marker that hands a session to the group, UNSUBSCRIBE, DISCONNECT.
	closeTimeout = 5 * time.Second
	// reasonNoMatchingSubscribers is the PUBACK reason code of MQTT 5 for a
	// message the broker accepted but nobody subscribes to.
	reasonNoMatchingSubscribers = 0x10
	// reasonPacketTooLarge and reasonQuotaExceeded are PUBACK refusals.
	reasonPacketTooLarge = 0x95
	reasonQuotaExceeded  = 0x97
	// reservedRoot is the first level of the topics the bus uses for its own
	// bookkeeping (orphaned sessions, claims, sentinels). '~' is not allowed
	// in vRPC names (rpcbus.ValidName), so no target's topic can collide.
	reservedRoot = "vrpc~"
)

// Bus is a vRPC bus on an MQTT 5 broker. It implements rpcbus.Bus,
// rpcbus.Inboxer, rpcbus.Pinger, rpcbus.Addresser and rpcbus.Remover; its
// subscriptions rpcbus.StatusReporter, without lag. All its methods are
// safe for concurrent use.
type Bus struct {
	o          options
	brokers    []broker
	nextBroker atomic.Int32 // index of the broker to try first

	pubOnce sync.Once
	pub     *link // publishes, and holds the inboxes

	inboxMu sync.RWMutex
	inboxes map[string]*inbox // by MQTT topic

	open closeset.Set[closeset.Closer] // subscriptions and inboxes not yet closed
}

var _ interface {
	rpcbus.Bus
	rpcbus.Inboxer
	rpcbus.Pinger
} = (*Bus)(nil)

// New returns a bus of type mqtt: a client of the broker in cfg.Brokers
// (default 127.0.0.1:1883; several are tried in turn) configured by
// cfg.Settings, described in the package documentation. It connects when
// first used.
func New(cfg rpcbus.Config) (*Bus, error) {
	o, err := decodeOptions(cfg.Settings)
	if err != nil {
		return nil, err
	}
	brokers, err := parseBrokers(cfg.Brokers, &o)
	if err != nil {
		return nil, err
	}
	return &Bus{o: o, brokers: brokers, inboxes: map[string]*inbox{}}, nil
}

// publisher returns the link that publishes and holds the inboxes,
// starting it on first use. Its session ends with its connection: inboxes
// are subscribed again on every connection.
func (b *Bus) publisher() (*link, error) {
	b.pubOnce.Do(func() {
		if b.open.Closed() {
			return
		}
		b.pub = newLink(b, linkConfig{
			clientID:   b.clientID(),
			cleanStart: true,
			recvMax:    65535, // replies are handled as they come
			onUp:       b.resubscribeInboxes,
			onPublish:  b.onInboxMessage,
		})
	})
	if b.pub == nil {
		return nil, rpcbus.ErrClosed
	}
	return b.pub, nil
}

// clientID returns a new client id: the prefix and 16 random characters.
func (b *Bus) clientID() string {
	return b.o.ClientIDPrefix + strings.ToLower(rand.Text()[:16])
}

// Publish sends msg to topic with QoS 1 and returns once the broker has
// acknowledged it (PUBACK), or ctx is done. A topic name's '.'s become the
// '/'s of its MQTT topic. msg.Key travels as the MQTT 5 Correlation Data,
// msg.Headers as User Properties.
//
// When the broker answers that nobody subscribes to the topic (reason code
// 0x10, which Mosquitto sends), the error wraps rpcbus.ErrUnknownTopic; the
// message is then lost. A message larger than max_message_bytes, or than the
// broker's Maximum Packet Size, gives an error wrapping
// rpcbus.ErrMessageTooLarge. While the broker cannot be reached, Publish
// waits for the connection until ctx ends, then fails with an error wrapping
// rpcbus.ErrUnavailable and ctx.Err(). If the connection drops after the message
// was sent, it is sent again on the next one: the broker may then carry it
// twice.
func (b *Bus) Publish(ctx context.Context, topic string, msg *rpcbus.Message) error {
	if b.open.Closed() {
		return rpcbus.ErrClosed
	}
	mt, err := mqttTopic(topic)
	if err != nil {
		return fmt.Errorf("mqtt: publish: %w", err)
	}
	size := len(msg.Key) + len(msg.Value)
	for k, v := range msg.Headers {
		size += len(k) + len(v) + 5 // property id and two lengths
	}
	if size > b.o.MaxMessageBytes {
		return fmt.Errorf("mqtt: publish %d bytes to topic %q: %w (max_message_bytes is %d)",
			size, topic, rpcbus.ErrMessageTooLarge, b.o.MaxMessageBytes)
	}
	p := &paho.Publish{QoS: 1, Topic: mt, Payload: msg.Value}
	if len(msg.Key) > 0 || len(msg.Headers) > 0 {
		p.Properties = &paho.PublishProperties{CorrelationData: msg.Key}
		for k, v := range msg.Headers {
			p.Properties.User = append(p.Properties.User, paho.UserProperty{Key: k, Value: v})
		}
	}
	pub, err := b.publisher()
	if err != nil {
		return err
	}
	return pub.publish(ctx, topic, p, size)
}

// publish sends p on the link's connection, again on the next one if the
// connection drops before the PUBACK.
func (l *link) publish(ctx context.Context, name string, p *paho.Publish, size int) error {
	for {
		c, err := l.current(ctx)
		if err != nil {
			return fmt.Errorf("mqtt: publish to topic %q: %w", name, err)
		}
		if c.maxPacket > 0 && size+len(p.Topic)+32 > int(c.maxPacket) {
			return fmt.Errorf("mqtt: publish %d bytes to topic %q: %w (the broker's maximum packet size is %d)",
				size, name, rpcbus.ErrMessageTooLarge, c.maxPacket)
		}
		resp, err := c.publish(ctx, p)
		switch {
		case err == nil && resp != nil && resp.ReasonCode == reasonNoMatchingSubscribers:
			return fmt.Errorf("mqtt: publish to topic %q: %w (the broker knows no subscriber)", name, rpcbus.ErrUnknownTopic)
		case err == nil:
			return nil
		case resp != nil && resp.ReasonCode == reasonNotAuthorized:
			return fmt.Errorf("mqtt: publish to topic %q: %w", name, aclRefusal("publish to", p.Topic, l.bus.o.Username, err))
		case resp != nil && resp.ReasonCode == reasonPacketTooLarge:
			return fmt.Errorf("mqtt: publish %d bytes to topic %q: %w (refused by the broker: %v)", size, name, rpcbus.ErrMessageTooLarge, err)
		case resp != nil:
			return fmt.Errorf("mqtt: publish to topic %q: refused by the broker with reason code %#02x: %w", name, resp.ReasonCode, err)
		case ctx.Err() != nil:
			return fmt.Errorf("mqtt: publish to topic %q: %w", name, ctx.Err())
		case errors.Is(err, paho.ErrInvalidArguments):
			return fmt.Errorf("mqtt: publish to topic %q: %w", name, err)
		}
		// The connection failed under the publish: wait for run to
		// notice, then go again on the next one.
		select {
		case <-c.dead:
		case <-ctx.Done():
			return fmt.Errorf("mqtt: publish to topic %q: %w", name, disconnected(ctx, err))
		}
	}
}

// Ping reports whether the bus is connected to its broker, connecting
// first if it has not yet: it waits for the connection until ctx ends.
func (b *Bus) Ping(ctx context.Context) error {
	if b.open.Closed() {
		return rpcbus.ErrClosed
	}
	pub, err := b.publisher()
	if err != nil {
		return err
	}
	if _, err := pub.current(ctx); err != nil {
		return fmt.Errorf("mqtt: ping %s: %w", b.brokers[0].addr, err)
	}
	return nil
}

// Close closes the subscriptions and inboxes still open, without waiting
// for unacknowledged deliveries (their sessions go to the rest of their
// groups), then the connection that publishes. Calling it again does
// nothing.
func (b *Bus) Close() error {
	open, first := b.open.Close()
	if !first {
		return nil
	}

	var wg sync.WaitGroup
	for _, c := range open {
		wg.Go(c.CloseNow)
	}
	wg.Wait()
	b.pubOnce.Do(func() {}) // no publisher from now on
	if b.pub != nil {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		b.pub.leave(ctx, nil, nil)
		cancel()
	}
	return nil
}

// mqttTopic maps a vRPC topic name to its MQTT topic: each '.' becomes a
// '/', so that a.b.c is the topic a/b/c with three levels.
func mqttTopic(name string) (string, error) {
	switch {
	case name == "":
		return "", errors.New("empty topic name")
	case strings.ContainsAny(name, "/+#\x00"):
		return "", fmt.Errorf("topic name %q: '/', '+', '#' and NUL cannot be part of it ('.' separates MQTT topic levels)", name)
	case name[0] == '$':
		return "", fmt.Errorf("topic name %q: MQTT reserves topics starting with '$' for the broker", name)
	case name == reservedRoot || strings.HasPrefix(name, reservedRoot+"."):
		return "", fmt.Errorf("topic name %q: %s is reserved for the bus's own bookkeeping", name, reservedRoot)
	}
	return strings.ReplaceAll(name, ".", "/"), nil
}

// topicName maps an MQTT topic back to its vRPC name.
func topicName(mt string) string { return strings.ReplaceAll(mt, "/", ".") }

// signal wakes whoever waits on c, without blocking.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
