package memory

import (
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/nextpkg/vrpc/internal/settings"
	"github.com/nextpkg/vrpc/rpcbus"
)

const (
	// DefaultMaxBacklog is rpc_bus.settings.max_backlog when it is not set.
	DefaultMaxBacklog = 100000
	// DefaultMaxMessageBytes is rpc_bus.settings.max_message_bytes when it
	// is not set: 5 MiB.
	DefaultMaxMessageBytes = 5 << 20
)

func init() {
	rpcbus.Register("memory", func(cfg rpcbus.Config) (rpcbus.Bus, error) {
		b, err := New(cfg)
		if err != nil {
			return nil, err // not a typed nil in a non-nil interface
		}
		return b, nil
	})
}

var (
	_ rpcbus.Bus          = (*Bus)(nil)
	_ rpcbus.Inboxer      = (*Bus)(nil)
	_ rpcbus.TopicCreator = (*Bus)(nil)
)

// config is rpc_bus.settings for this backend.
type config struct {
	MaxBacklog      int `json:"max_backlog"`
	MaxMessageBytes int `json:"max_message_bytes"`
}

// Named brokers are shared by the buses of one process; namedMu guards
// named and every broker's refs.
var (
	namedMu sync.Mutex
	named   = map[string]*broker{}
)

// broker is what a Kafka cluster is to the Kafka backend: the topics,
// groups and inboxes that buses on one name share. One mutex guards all of
// it, and the state of every bus, subscription and inbox on the broker.
type broker struct {
	name string // "" for a private broker
	refs int    // buses using a named broker; guarded by namedMu

	mu      sync.Mutex
	topics  map[string]*topic
	inboxes map[string]*inbox
}

func newBroker(name string) *broker {
	return &broker{name: name, topics: map[string]*topic{}, inboxes: map[string]*inbox{}}
}

func (br *broker) String() string {
	if br.name == "" {
		return "(private)"
	}
	return fmt.Sprintf("%q", br.name)
}

func acquire(brokers []string) (*broker, error) {
	if len(brokers) == 0 {
		return newBroker(""), nil
	}
	name := brokers[0]
	if name == "" {
		return nil, fmt.Errorf("rpc_bus.brokers[0] is empty: name the in-memory broker to share it between buses, or leave brokers out for a private one")
	}
	namedMu.Lock()
	defer namedMu.Unlock()
	br := named[name]
	if br == nil {
		br = newBroker(name)
		named[name] = br
	}
	br.refs++
	return br, nil
}

func release(br *broker) {
	if br.name == "" {
		return
	}
	namedMu.Lock()
	defer namedMu.Unlock()
	br.refs--
	if br.refs == 0 && named[br.name] == br {
		delete(named, br.name)
	}
}

// Bus is an in-process bus. It implements rpcbus.Bus, rpcbus.Inboxer,
// rpcbus.TopicCreator, rpcbus.Pinger and rpcbus.Addresser; its
// subscriptions rpcbus.StatusReporter. See the package documentation for
// its semantics.
type Bus struct {
	br  *broker
	cfg config
	wg  sync.WaitGroup // the goroutines of subs and inboxes

	// Guarded by br.mu.
	closed  bool
	subs    map[*subscription]struct{}
	inboxes map[*inbox]struct{}
}

// New builds a memory bus from cfg: cfg.Brokers[0], if any, names the
// shared in-memory broker, and cfg.Settings is decoded strictly (see the
// package documentation). cfg.Type is not looked at.
func New(cfg rpcbus.Config) (*Bus, error) {
	c := config{MaxBacklog: DefaultMaxBacklog, MaxMessageBytes: DefaultMaxMessageBytes}
	if err := settings.Decode("rpc_bus.settings", cfg.Settings, &c); err != nil {
		return nil, err
	}
	if c.MaxBacklog < 1 {
		return nil, fmt.Errorf("rpc_bus.settings.max_backlog: must be at least 1, got %d", c.MaxBacklog)
	}
	if c.MaxMessageBytes < 1 {
		return nil, fmt.Errorf("rpc_bus.settings.max_message_bytes: must be at least 1, got %d", c.MaxMessageBytes)
	}
	br, err := acquire(cfg.Brokers)
	if err != nil {
		return nil, err
	}
	return &Bus{
		br:      br,
		cfg:     c,
		subs:    map[*subscription]struct{}{},
		inboxes: map[*inbox]struct{}{},
	}, nil
}

// CreateTopics creates the topics that do not exist yet on the bus's
// broker. Messages published to them are then kept for groups to come, up
// to max_backlog.
func (b *Bus) CreateTopics(ctx context.Context, topics ...string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory: create topics: %w", err)
	}
	for _, name := range topics {
		if name == "" {
			return fmt.Errorf("memory: create topics: empty topic name")
		}
	}
	b.br.mu.Lock()
	defer b.br.mu.Unlock()
	if b.closed {
		return fmt.Errorf("memory: create topics: %w", rpcbus.ErrClosed)
	}
	for _, name := range topics {
		b.br.topic(name)
	}
	return nil
}

// Publish copies msg into topic (or into the inbox whose address topic
// is) and returns once it is stored; handlers run later. It fails with
// rpcbus.ErrUnknownTopic when neither exists, rpcbus.ErrMessageTooLarge
// above max_message_bytes, ErrBacklogFull when max_backlog messages are
// already kept there, and rpcbus.ErrClosed once the bus is closed.
func (b *Bus) Publish(ctx context.Context, topic string, msg *rpcbus.Message) error {
	if msg == nil {
		return fmt.Errorf("memory: publish to %q: nil message", topic)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory: publish to %q: %w", topic, err)
	}
	if n := recordSize(msg); n > b.cfg.MaxMessageBytes {
		return fmt.Errorf("memory: publish to %q: record is %d bytes, over rpc_bus.settings.max_message_bytes %d: %w",
			topic, n, b.cfg.MaxMessageBytes, rpcbus.ErrMessageTooLarge)
	}
	// Copy before taking the lock: the copy is the only work proportional
	// to the payload.
	rec := record{key: clone(msg.Key), value: clone(msg.Value), headers: maps.Clone(msg.Headers)}

	br := b.br
	br.mu.Lock()
	defer br.mu.Unlock()
	if b.closed {
		return fmt.Errorf("memory: publish to %q: %w", topic, rpcbus.ErrClosed)
	}
	if ib := br.inboxes[topic]; ib != nil {
		if len(ib.queue) >= b.cfg.MaxBacklog {
			return fmt.Errorf("memory: publish to inbox %q: %d messages wait for its handler (rpc_bus.settings.max_backlog %d): %w",
				topic, len(ib.queue), b.cfg.MaxBacklog, ErrBacklogFull)
		}
		ib.queue = append(ib.queue, &rpcbus.Message{Topic: topic, Key: rec.key, Value: rec.value, Headers: rec.headers})
		signal(ib.wake)
		return nil
	}
	t := br.topics[topic]
	if t == nil {
		return fmt.Errorf("memory: publish to %q on broker %s: %w (create it with CreateTopics or Subscribe first)",
			topic, br, rpcbus.ErrUnknownTopic)
	}
	if len(t.log) >= b.cfg.MaxBacklog {
		return fmt.Errorf("memory: publish to %q: %d messages kept for groups (rpc_bus.settings.max_backlog %d): %w",
			topic, len(t.log), b.cfg.MaxBacklog, ErrBacklogFull)
	}
	// Publish time, never before the last record's, so that a new group's
	// start can be found by binary search.
	rec.at = time.Now().UnixNano()
	if n := len(t.log); n > 0 {
		rec.at = max(rec.at, t.log[n-1].at)
	}
	t.log = append(t.log, rec)
	for _, g := range t.groups {
		// Wake the members from a rotating start: the one woken last tends
		// to run first, so a fixed order would hand one member every
		// message of a caller that waits for each reply.
		n := len(g.members)
		for i := range n {
			signal(g.members[(g.wakeNext+i)%n].wake)
		}
		if n > 0 {
			g.wakeNext = (g.wakeNext + 1) % n
		}
	}
	return nil
}

// Close closes the subscriptions and inboxes still open on b, without
// waiting for acknowledgements (unacknowledged deliveries go back to their
// groups), waits until their handlers have returned, and lets go of the
// broker; it must not be called from a handler. Later calls return
// rpcbus.ErrClosed.
func (b *Bus) Close() error {
	br := b.br
	br.mu.Lock()
	if b.closed {
		br.mu.Unlock()
		return fmt.Errorf("memory: close bus: %w", rpcbus.ErrClosed)
	}
	b.closed = true
	var subs []*subscription
	for s := range b.subs {
		if !s.closing {
			s.closing = true
			subs = append(subs, s)
		}
	}
	var inboxes []*inbox
	for ib := range b.inboxes {
		if !ib.closed {
			ib.detach()
			inboxes = append(inboxes, ib)
		}
	}
	br.mu.Unlock()

	expired, cancel := context.WithCancel(context.Background())
	cancel() // give unacknowledged deliveries back at once
	for _, s := range subs {
		_ = s.shutdown(expired) // its only error says deliveries went back to the group
	}
	for _, ib := range inboxes {
		close(ib.stop)
	}
	b.wg.Wait()
	release(br)
	return nil
}

// Inbox creates a private address, name followed by a dot and a random
// suffix, whose messages are handed to h one at a time, in publish order,
// from the inbox's own goroutine. It is registered before Inbox returns.
// An empty name is taken as "inbox".
func (b *Bus) Inbox(ctx context.Context, name string, h func(m *rpcbus.Message)) (rpcbus.Inbox, error) {
	if h == nil {
		return nil, fmt.Errorf("memory: inbox %q: nil handler", name)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memory: inbox %q: %w", name, err)
	}
	if name == "" {
		name = "inbox"
	}
	ib := &inbox{
		bus:  b,
		h:    h,
		wake: make(chan struct{}, 1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	br := b.br
	br.mu.Lock()
	defer br.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("memory: inbox %q: %w", name, rpcbus.ErrClosed)
	}
	for {
		ib.addr = name + "." + rand.Text()
		if br.inboxes[ib.addr] == nil && br.topics[ib.addr] == nil {
			break
		}
	}
	br.inboxes[ib.addr] = ib
	b.inboxes[ib] = struct{}{}
	b.wg.Add(1)
	go ib.run()
	return ib, nil
}

// record is a published message as a topic keeps it.
type record struct {
	key, value []byte
	headers    map[string]string
	at         int64 // publish time, Unix ns; not before the record before
}

func recordSize(m *rpcbus.Message) int {
	n := len(m.Key) + len(m.Value)
	for k, v := range m.Headers {
		n += len(k) + len(v)
	}
	return n
}

// clone copies b with cap equal to len, so that a handler appending to a
// shared Value reallocates instead of writing into another's view.
func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	c := make([]byte, len(b))
	copy(c, b)
	return c
}

// signal wakes the goroutine waiting on c without ever blocking; c has
// room for one pending wake-up, which is all a waiter needs.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
