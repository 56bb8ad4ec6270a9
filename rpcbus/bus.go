package rpcbus

import (
	"context"
	"strings"
	"time"
)

// Message is one record on a bus.
type Message struct {
	// Topic is the address the message was published to. Set on delivery;
	// ignored by Publish, which takes the topic as an argument.
	Topic string
	// Key, where the backend has keys, chooses the partition. Nil spreads
	// messages over partitions.
	Key []byte
	// Value is the message body: an encoded vRPC envelope.
	Value []byte
	// Headers are optional string headers. The hot path leaves them nil.
	Headers map[string]string
}

// Delivery is a Message handed to a subscriber, to be acknowledged once it
// has been handled.
type Delivery struct {
	Message
	ack func()
}

// NewDelivery is for backends: it wraps m with the function that Ack calls.
func NewDelivery(m Message, ack func()) *Delivery {
	return &Delivery{Message: m, ack: ack}
}

// Ack tells the bus the message has been handled and need not be delivered
// again. It may be called from any goroutine, at most once; later calls do
// nothing.
func (d *Delivery) Ack() {
	if f := d.ack; f != nil {
		d.ack = nil
		f()
	}
}

// Handler receives deliveries. It is called from the subscription's own
// goroutine and should hand work off quickly; it must Ack every delivery
// eventually, or the subscription stops delivering once MaxInFlight
// deliveries are unacknowledged.
type Handler func(d *Delivery)

// SubscribeOptions says what a subscription consumes.
type SubscribeOptions struct {
	// Topics to consume. Backends create missing ones.
	Topics []string
	// Group shares the topics' messages among all subscriptions with the
	// same group: each message goes to one of them.
	Group string
	// MaxInFlight bounds the deliveries handed to the handler and not yet
	// acknowledged. Zero means DefaultMaxInFlight (1024).
	MaxInFlight int
	// NewGroupMaxAge, if positive, is how far back a group that has no
	// recorded position on a topic starts: at the first message published
	// at most NewGroupMaxAge before Subscribe, not at the oldest the bus
	// still keeps. A group with a recorded position resumes from it
	// whatever this is. Servers set it to the longest deadline they
	// accept, so that a group under a new name does not run requests
	// whose callers have long given up, or that another group served.
	//
	// Kafka resets to the offset of that time (also when the recorded
	// position is no longer kept), NATS JetStream creates the durable
	// consumer to deliver by start time, Redis Streams creates the
	// consumer group at the stream id of that time, and the memory bus
	// skips older records. AMQP and MQTT give a new group (a new queue, a
	// new shared subscription) no message published before it joined, so
	// the option changes nothing there. Zero keeps each bus's default:
	// from the oldest message kept, where the bus keeps any.
	NewGroupMaxAge time.Duration
}

// Subscription is a running consumer.
type Subscription interface {
	// Close stops delivering, waits until every delivery handed out has been
	// acknowledged or ctx is done, records the acknowledged position and
	// leaves the group. Unacknowledged messages are delivered again to
	// another member of the group.
	Close(ctx context.Context) error
}

// Bus is a message bus vRPC can publish to and consume from.
type Bus interface {
	// Publish sends msg to topic and returns once the bus has accepted it
	// (for Kafka: acknowledged by the brokers per the acks setting). It
	// returns ErrUnknownTopic when topic does not exist.
	Publish(ctx context.Context, topic string, msg *Message) error
	// Subscribe starts consuming and returns once the subscription is
	// registered with the bus.
	Subscribe(ctx context.Context, opts SubscribeOptions, h Handler) (Subscription, error)
	// Close releases the bus's connections. Subscriptions and inboxes
	// should be closed first.
	Close() error
}

// Inbox is a private reply address: messages published to Address reach
// only the inbox's handler.
type Inbox interface {
	// Address is what a request carries as its reply address.
	Address() string
	// Close stops delivering to the inbox's handler.
	Close() error
}

// Inboxer is implemented by buses with a native reply address. Inbox must
// return only once every message published to the address afterwards is
// certain to be delivered to h; name is a stable prefix (the client id).
type Inboxer interface {
	Inbox(ctx context.Context, name string, h func(m *Message)) (Inbox, error)
}

// TopicCreator is implemented by buses that create topics on request.
// Servers create their request topics before consuming, so that a request
// published before any server has joined is kept, not refused.
type TopicCreator interface {
	CreateTopics(ctx context.Context, topics ...string) error
}

// InboxOwner is implemented by buses that can tell the name an inbox
// address was opened with. A server that authenticates its clients uses it
// to refuse a request whose reply address is not one of its client's own
// inboxes, so that no client can aim a server's replies at another's.
type InboxOwner interface {
	// InboxOf reports whether address is one that Inbox could return for
	// name.
	InboxOf(address, name string) bool
}

// Alphabets of the random parts of inbox addresses, for InboxSuffixed.
const (
	// Base32Upper is what crypto/rand.Text returns.
	Base32Upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	// Base32Lower is rand.Text lowered.
	Base32Lower = "abcdefghijklmnopqrstuvwxyz234567"
)

// InboxSuffixed reports whether address is name, a dot and n characters of
// alphabet: the shape of most buses' inbox addresses, for their InboxOf.
func InboxSuffixed(address, name string, n int, alphabet string) bool {
	if len(address) != len(name)+1+n || address[:len(name)] != name || address[len(name)] != '.' {
		return false
	}
	for i := len(name) + 1; i < len(address); i++ {
		if strings.IndexByte(alphabet, address[i]) < 0 {
			return false
		}
	}
	return true
}
