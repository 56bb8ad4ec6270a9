package bustest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nextpkg/vrpc/rpcbus"
)

// Features says what a backend honestly cannot do. The zero value claims
// everything: a bus that passes Run with Features{} gives every guarantee
// the suite checks. Each flag skips the tests it names, with a message
// naming the flag, and nothing else. A backend documents the flags it sets
// in its package documentation and in the README's table of backends.
type Features struct {
	// NoPerKeyOrdering is for buses on which one consumer may receive the
	// messages of one key in another order than they were published (a bus
	// that hands one consumer's messages to it concurrently, say). It skips
	// PerKeyOrdering.
	NoPerKeyOrdering bool

	// NoWorkSpreading is for buses whose group may give every message to
	// one member as long as that member keeps up (Kafka with a single
	// partition per topic). It skips GroupSpreadsWork and
	// RedeliveryAfterClose/MemberPresent, which needs both members to get
	// work; GroupSharesWork still checks that each message goes to exactly
	// one member.
	NoWorkSpreading bool

	// UnknownTopicNotDetected is for buses that have no notion of a topic
	// existing, so that Publish to one nobody consumes succeeds and the
	// message is dropped (MQTT, core NATS subjects). It skips UnknownTopic.
	// vRPC clients on such a bus learn of a missing server only from their
	// deadline.
	UnknownTopicNotDetected bool

	// RedeliveryTimeout is how long the deliveries of a member that closed
	// without acknowledging them may take to reach another member: zero for
	// buses that give them back at Close (Kafka, by leaving the group;
	// memory), the acknowledgement deadline for buses that redeliver only
	// once it passes (a JetStream consumer's AckWait, the min-idle time of
	// Redis XAUTOCLAIM). It lengthens the wait of RedeliveryAfterClose
	// only.
	RedeliveryTimeout time.Duration

	// NoLag is for buses whose subscriptions cannot tell how many messages
	// their group has not yet acknowledged (MQTT: the broker keeps a
	// shared subscription's queue to itself), so that every Lag of their
	// Status is -1. It skips the lag checks of Status; the group and
	// topics it reports are still checked.
	NoLag bool

	// NoHistory is for buses on which a new group receives no message
	// published before it joined (AMQP: a new queue; MQTT: a new shared
	// subscription), so that SubscribeOptions.NewGroupMaxAge has nothing
	// to skip. NewGroupMaxAge then checks that a new group without the
	// option gets only the messages published after it joined, instead of
	// every message kept.
	NoHistory bool

	// MaxPayload is the largest Value, in bytes, the bus promises to carry
	// with a small key and no headers. Zero means at least 1 MiB. Payload
	// tests of larger sizes are skipped.
	MaxPayload int
}

// waitLimit bounds every wait of the suite. It only turns a hang into a
// failure, so it is generous: a loaded two-core machine running -race
// must never reach it.
const waitLimit = 60 * time.Second

// test is one subtest of Run.
type test struct {
	name string
	run  func(t *testing.T, s *suite)
}

// tests are Run's subtests, in the order they are started.
var tests = []test{
	{"RoundTrip", testRoundTrip},
	{"RequestReply", testRequestReply},
	{"PerKeyOrdering", testPerKeyOrdering},
	{"GroupSharesWork", testGroupSharesWork},
	{"GroupSpreadsWork", testGroupSpreadsWork},
	{"EveryGroupGetsEverything", testEveryGroupGetsEverything},
	{"NewGroupMaxAge", testNewGroupMaxAge},
	{"RedeliveryAfterClose", testRedeliveryAfterClose},
	{"NoRedeliveryAfterAck", testNoRedeliveryAfterAck},
	{"InboxOnlyAddressed", testInboxOnlyAddressed},
	{"InboxOwner", testInboxOwner},
	{"InboxGetsEverything", testInboxGetsEverything},
	{"Payload", testPayload},
	{"ManyPublishers", testManyPublishers},
	{"MaxInFlight", testMaxInFlight},
	{"UnknownTopic", testUnknownTopic},
	{"CloseStopsConsuming", testCloseStopsConsuming},
	{"InboxCloseStopsDelivering", testInboxCloseStopsDelivering},
	{"ClosedBus", testClosedBus},
	{"PingAndAddresses", testPingAndAddresses},
	{"Status", testStatus},
	{"Remove", testRemove},
	{"Backlog", testBacklog},
}

// Run runs the conformance suite against the buses newBus returns.
//
// Each call of newBus must return a new bus, connected to the same broker
// as every other call in this Run (as separate processes would be), or fail
// t. Run closes every bus it gets when its subtest ends; newBus may also
// register a Close of its own with t.Cleanup, as a second Close may return
// an error wrapping rpcbus.ErrClosed. Inbox tests run if the bus implements
// rpcbus.Inboxer, and are skipped otherwise.
//
// Run's subtests call t.Parallel. Goroutine leaks are for the backend's
// TestMain to check; see the package documentation.
func Run(t *testing.T, newBus func(t *testing.T) rpcbus.Bus, f Features) {
	t.Helper()
	s := &suite{newBus: newBus, f: f}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, s)
		})
	}
}

type suite struct {
	newBus func(t *testing.T) rpcbus.Bus
	f      Features
}

// bus returns a new bus, closed when t ends.
func (s *suite) bus(t *testing.T) rpcbus.Bus {
	t.Helper()
	b := s.newBus(t)
	if b == nil {
		t.Fatal("newBus returned a nil bus")
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil && !errors.Is(err, rpcbus.ErrClosed) {
			t.Errorf("Bus.Close: %v", err)
		}
	})
	return b
}

// inboxer returns b as an rpcbus.Inboxer, or skips t.
func inboxer(t *testing.T, b rpcbus.Bus) rpcbus.Inboxer {
	t.Helper()
	ib, ok := b.(rpcbus.Inboxer)
	if !ok {
		t.Skipf("%T does not implement rpcbus.Inboxer", b)
	}
	return ib
}

// name returns a topic, group or inbox name no other test uses, that is a
// valid name on every bus (rpcbus.ValidName).
func name(t *testing.T, what string) string {
	leaf := t.Name()
	if i := strings.LastIndexByte(leaf, '/'); i >= 0 {
		leaf = leaf[i+1:]
	}
	leaf = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, leaf)
	n := fmt.Sprintf("bustest.%s.%s.%s", leaf, what, strings.ToLower(rand.Text()[:12]))
	if !rpcbus.ValidName(n) {
		t.Fatalf("bustest made an invalid name %q", n)
	}
	return n
}

// limited returns a context that ends after waitLimit or with t.
func limited(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}

// expired returns a context that has already ended.
func expired() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func publish(t *testing.T, b rpcbus.Bus, topic string, m *rpcbus.Message) {
	t.Helper()
	if err := b.Publish(limited(t), topic, m); err != nil {
		t.Fatalf("Publish to %q: %v", topic, err)
	}
}

// publishValues publishes one message per value, in order, with key.
func publishValues(t *testing.T, b rpcbus.Bus, topic string, key []byte, values []string) {
	t.Helper()
	for _, v := range values {
		publish(t, b, topic, &rpcbus.Message{Key: key, Value: []byte(v)})
	}
}

// subscribe subscribes and, when t ends, closes the subscription, waiting
// for its acknowledgements: a test must acknowledge what it holds.
//
// Subscribe's context ends as soon as it returns: it bounds the call, not
// the subscription, and a bus that stops consuming then fails every test.
func subscribe(t *testing.T, b rpcbus.Bus, opts rpcbus.SubscribeOptions, h rpcbus.Handler) rpcbus.Subscription {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	sub, err := b.Subscribe(ctx, opts, h)
	cancel()
	if err != nil {
		t.Fatalf("Subscribe(%+v): %v", opts, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		if err := sub.Close(ctx); err != nil && !errors.Is(err, rpcbus.ErrClosed) {
			t.Errorf("Subscription.Close: %v", err)
		}
	})
	return sub
}

// openInbox opens an inbox and closes it when t ends. As with subscribe,
// Inbox's context ends as soon as it returns.
func openInbox(t *testing.T, b rpcbus.Inboxer, name string, h func(m *rpcbus.Message)) rpcbus.Inbox {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	ib, err := b.Inbox(ctx, name, h)
	cancel()
	if err != nil {
		t.Fatalf("Inbox(%q): %v", name, err)
	}
	t.Cleanup(func() {
		if err := ib.Close(); err != nil && !errors.Is(err, rpcbus.ErrClosed) {
			t.Errorf("Inbox.Close: %v", err)
		}
	})
	return ib
}

// values returns n distinct message values starting with prefix.
func values(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

// waitFor polls cond until it returns nil, and fails t with cond's last
// error if that takes longer than limit. The limit only turns a hang into a
// failure.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not done after %v: %v", what, limit, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// recorder keeps what a handler received. Its handlers never block, so a
// stray delivery cannot wedge a subscription's Close.
type recorder struct {
	mu   sync.Mutex
	msgs []rpcbus.Message
	held []*rpcbus.Delivery // deliveries not acknowledged by the handler
}

// ack records and acknowledges each delivery.
func (r *recorder) ack(d *rpcbus.Delivery) {
	r.mu.Lock()
	r.msgs = append(r.msgs, d.Message)
	r.mu.Unlock()
	d.Ack()
}

// hold records each delivery and keeps it unacknowledged.
func (r *recorder) hold(d *rpcbus.Delivery) {
	r.mu.Lock()
	r.msgs = append(r.msgs, d.Message)
	r.held = append(r.held, d)
	r.mu.Unlock()
}

// inbox records each inbox message.
func (r *recorder) inbox(m *rpcbus.Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, *m)
	r.mu.Unlock()
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

func (r *recorder) messages() []rpcbus.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]rpcbus.Message(nil), r.msgs...)
}

func (r *recorder) values() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.msgs))
	for i, m := range r.msgs {
		out[i] = string(m.Value)
	}
	return out
}

// takeHeld returns the held deliveries and forgets them.
func (r *recorder) takeHeld() []*rpcbus.Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	held := r.held
	r.held = nil
	return held
}

// atLeast is a waitFor condition: r has received n messages or more.
func (r *recorder) atLeast(n int) func() error {
	return func() error {
		if got := r.len(); got < n {
			return fmt.Errorf("%d of %d messages received", got, n)
		}
		return nil
	}
}

// counts tallies the values received by every recorder in rs.
func counts(rs ...*recorder) map[string]int {
	c := map[string]int{}
	for _, r := range rs {
		for _, v := range r.values() {
			c[v]++
		}
	}
	return c
}

// checkExactlyOnce fails t unless got holds every value of want once and
// nothing else. what names the receiver.
func checkExactlyOnce(t *testing.T, what string, got map[string]int, want []string) {
	t.Helper()
	var missing, dup []string
	wanted := make(map[string]bool, len(want))
	for _, v := range want {
		wanted[v] = true
		switch n := got[v]; {
		case n == 0:
			missing = append(missing, v)
		case n > 1:
			dup = append(dup, fmt.Sprintf("%s×%d", v, n))
		}
	}
	var extra []string
	for v := range got {
		if !wanted[v] {
			extra = append(extra, v)
		}
	}
	if len(missing) > 0 {
		t.Errorf("%s: %d of %d messages never received: %s", what, len(missing), len(want), sample(missing))
	}
	if len(dup) > 0 {
		t.Errorf("%s: %d messages received more than once: %s", what, len(dup), sample(dup))
	}
	if len(extra) > 0 {
		t.Errorf("%s: %d unexpected messages received: %s", what, len(extra), sample(extra))
	}
}

// sample lists the first few of vs.
func sample(vs []string) string {
	if len(vs) > 10 {
		return strings.Join(vs[:10], ", ") + ", ..."
	}
	return strings.Join(vs, ", ")
}
