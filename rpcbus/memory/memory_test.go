package memory_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/memory"
)

func TestMain(m *testing.M) {
	// Runs goleak.Find after every test has finished, parallel ones included.
	goleak.VerifyTestMain(m)
}

// waitLimit only turns a hang into a failure; no assertion depends on it.
const waitLimit = 10 * time.Second

func newBus(t *testing.T, brokers []string, set map[string]any) *memory.Bus {
	t.Helper()
	b, err := memory.New(rpcbus.Config{Type: "memory", Brokers: brokers, Settings: set})
	if err != nil {
		t.Fatalf("memory.New: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil && !errors.Is(err, rpcbus.ErrClosed) {
			t.Errorf("Bus.Close: %v", err)
		}
	})
	return b
}

// broker names a broker private to the test.
func broker(t *testing.T) []string { return []string{t.Name()} }

func subscribe(t *testing.T, b rpcbus.Bus, opts rpcbus.SubscribeOptions, h rpcbus.Handler) rpcbus.Subscription {
	t.Helper()
	s, err := b.Subscribe(t.Context(), opts, h)
	if err != nil {
		t.Fatalf("Subscribe(%+v): %v", opts, err)
	}
	t.Cleanup(func() {
		// Bounded so that a delivery a test forgot to ack fails the test
		// instead of hanging it.
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		if err := s.Close(ctx); err != nil && !errors.Is(err, rpcbus.ErrClosed) {
			t.Errorf("Subscription.Close: %v", err)
		}
	})
	return s
}

// forward is a handler that acks and sends each delivery's value to ch.
func forward(ch chan<- string) rpcbus.Handler {
	return func(d *rpcbus.Delivery) {
		d.Ack()
		ch <- string(d.Value)
	}
}

func publish(t *testing.T, b rpcbus.Bus, topic string, values ...string) {
	t.Helper()
	for _, v := range values {
		if err := b.Publish(t.Context(), topic, &rpcbus.Message{Value: []byte(v)}); err != nil {
			t.Fatalf("Publish(%q, %q): %v", topic, v, err)
		}
	}
}

func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLimit):
		t.Fatalf("nothing received within %v", waitLimit)
		panic("unreachable")
	}
}

func recvN[T any](t *testing.T, ch <-chan T, n int) []T {
	t.Helper()
	out := make([]T, 0, n)
	for range n {
		out = append(out, recv(t, ch))
	}
	return out
}

func seq(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}

func TestRoundTripWithHeaders(t *testing.T) {
	t.Parallel()
	b := newBus(t, broker(t), nil)
	got := make(chan rpcbus.Message, 1)
	subscribe(t, b, rpcbus.SubscribeOptions{Topics: []string{"req"}, Group: "g"}, func(d *rpcbus.Delivery) {
		d.Ack()
		got <- d.Message
	})

	buf := []byte("hello")
	key := []byte("k1")
	hdr := map[string]string{"trace-id": "abc", "empty": ""}
	if err := b.Publish(t.Context(), "req", &rpcbus.Message{Key: key, Value: buf, Headers: hdr}); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	// The caller may reuse its buffers and map once Publish returns.
	copy(buf, "XXXXX")
	copy(key, "XX")
	hdr["trace-id"] = "changed"

	m := recv(t, got)
	if m.Topic != "req" || string(m.Value) != "hello" || string(m.Key) != "k1" {
		t.Errorf("got topic %q key %q value %q, want req k1 hello", m.Topic, m.Key, m.Value)
	}
	if want := map[string]string{"trace-id": "abc", "empty": ""}; !maps.Equal(m.Headers, want) {
		t.Errorf("headers = %v, want %v", m.Headers, want)
	}
}

func TestUnknownTopic(t *testing.T) {
	t.Parallel()
	b := newBus(t, broker(t), nil)
	err := b.Publish(t.Context(), "nobody", &rpcbus.Message{Value: []byte("x")})
	if !errors.Is(err, rpcbus.ErrUnknownTopic) {
		t.Fatalf("Publish to a missing topic = %v, want ErrUnknownTopic", err)
	}
	if !strings.Contains(err.Error(), `"nobody"`) {
		t.Errorf("error %q does not name the topic", err)
	}
	if err := b.CreateTopics(t.Context(), "nobody"); err != nil {
		t.Fatalf("CreateTopics: %v", err)
	}
	publish(t, b, "nobody", "kept")
}

func TestBrokerIsolation(t *testing.T) {
	t.Parallel()
	name := t.Name()
	a1 := newBus(t, []string{name}, nil)
	a2 := newBus(t, []string{name, "ignored:9092"}, nil)
	other := newBus(t, []string{name + "-other"}, nil)
	private1 := newBus(t, nil, nil)
	private2 := newBus(t, nil, nil)

	if err := a1.CreateTopics(t.Context(), "shared"); err != nil {
		t.Fatal(err)
	}
	if err := private1.CreateTopics(t.Context(), "shared"); err != nil {
		t.Fatal(err)
	}
	publish(t, a2, "shared", "same broker")
	publish(t, private1, "shared", "own broker")
	for _, tc := range []struct {
		what string
		bus  *memory.Bus
	}{
		{"another broker name", other},
		{"another private broker", private2},
	} {
		if err := tc.bus.Publish(t.Context(), "shared", &rpcbus.Message{}); !errors.Is(err, rpcbus.ErrUnknownTopic) {
			t.Errorf("%s: Publish = %v, want ErrUnknownTopic", tc.what, err)
		}
	}

	// The message published through a2 waits for a group on a1.
	got := make(chan string, 1)
	subscribe(t, a1, rpcbus.SubscribeOptions{Topics: []string{"shared"}, Group: "g"}, forward(got))
	if v := recv(t, got); v != "same broker" {
		t.Errorf("got %q, want %q", v, "same broker")
	}
}

func TestBrokerDroppedWithLastBus(t *testing.T) {
	t.Parallel()
	name := t.Name()
	b1 := newBus(t, []string{name}, nil)
	b2 := newBus(t, []string{name}, nil)
	if err := b1.CreateTopics(t.Context(), "t"); err != nil {
		t.Fatal(err)
	}
	if err := b1.Close(); err != nil {
		t.Fatal(err)
	}
	publish(t, b2, "t", "still there") // b2 still holds the broker
	if err := b2.Close(); err != nil {
		t.Fatal(err)
	}
	b3 := newBus(t, []string{name}, nil)
	if err := b3.Publish(t.Context(), "t", &rpcbus.Message{}); !errors.Is(err, rpcbus.ErrUnknownTopic) {
		t.Errorf("Publish on a fresh broker = %v, want ErrUnknownTopic", err)
	}
}

func TestNewGroupStartsAtOldest(t *testing.T) {
	t.Parallel()
	b := newBus(t, broker(t), nil)
	if err := b.CreateTopics(t.Context(), "req"); err != nil {
		t.Fatal(err)
	}
	want := seq("m", 5)
	publish(t, b, "req", want...)
	got := make(chan string, len(want))
	subscribe(t, b, rpcbus.SubscribeOptions{Topics: []string{"req"}, Group: "late"}, forward(got))
	if g := recvN(t, got, len(want)); !slices.Equal(g, want) {
		t.Errorf("got %v, want %v in publish order", g, want)
	}
}

func TestGroupSplitsMessages(t *testing.T) {
	t.Parallel()
	const n = 500
	b := newBus(t, broker(t), nil)
	type got struct {
		member int
		value  string
	}
	ch := make(chan got, 2*n)
	subs := make([]rpcbus.Subscription, 2)
	for i := range subs {
		subs[i] = subscribe(t, b, rpcbus.SubscribeOptions{Topics: []string{"work"}, Group: "workers"}, func(d *rpcbus.Delivery) {
			d.Ack()
			ch <- got{i, string(d.Value)}
		})
	}
	want := seq("job", n)
	publish(t, b, "work", want...)

	seen := map[string]int{}
	for _, g := range recvN(t, ch, n) {
		seen[g.value]++
	}
	// Once both members have stopped, no handler can run any more: any
	// duplicate would now be in ch.
	for _, s := range subs {
		if err := s.Close(t.Context()); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	close(ch)
	for g := range ch {
		seen[g.value]++
	}
	for _, v := range want {
		if seen[v] != 1 {
			t.Errorf("%s delivered %d times to the group, want once", v, seen[v])
		}
	}
	if len(seen) != n {
		t.Errorf("group received %d distinct messages, want %d", len(seen), n)
	}
}

func TestEveryGroupGetsEverything(t *testing.T) {
	t.Parallel()
	b := newBus(t, broker(t), nil)
	want := seq("m", 100)
	chans := map[string]chan string{}
	for _, g := range []string{"g1", "g2", ""} { // "" is a private group
		chans[g] = make(chan string, len(want))
		subscribe(t, b, rpcbus.SubscribeOptions{Topics: []string{"events"}, Group: g}, forward(chans[g]))
	}
	publish(t, b, "events", want...)
	for g, ch := range chans {
		if got := recvN(t, ch, len(want)); !slices.Equal(got, want) {
			t.Errorf("group %q got %v, want %v", g, got, want)
		}
	}
}

func TestRedeliveryAfterMemberClose(t *testing.T) {
	t.Parallel()
	b := newBus(t, broker(t), nil)
	held := make(chan *rpcbus.Delivery, 3)
	first, err := b.Subscribe(t.Context(), rpcbus.SubscribeOptions{Topics: []string{"req"}, Group: "g"}, func(d *rpcbus.Delivery) {
		held <- d // acked later, or never
	})
	if err != nil {
		t.Fatal(err)
	}
	publish(t, b, "req", "m0", "m1", "m2")
	ds := recvN(t, held, 3)
	ds[0].Ack()

	expired, cancel := context.WithCancel(t.Context())
	cancel()
	err = first.Close(expired)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "2 deliveries unacknowledged") {
		t.Fatalf("Close with unacked deliveries = %v, want context.Canceled naming 2 deliveries", err)
	}
	// An ack after the member left does not count: m1 belongs to the next
	// member now.
	ds[1].Ack()

	got := make(chan string, 3)
	subscribe(t, b, rpcbus.SubscribeOptions{Topics: []string{"req"}, Group: "g"}, forward(got))
	publish(t, b, "req", "m3")
	// A single member gets given-back messages first, oldest first; m0,
	// acknowledged, never comes back.
	if g := recvN(t, got, 3); !slices.Equal(g, []string{"m1", "m2", "m3"}) {
		t.Errorf("next member got %v, want [m1 m2 m3]", g)
	}
}

func TestCloseWaitsForAcks(t *testing.T) {
	t.Parallel()
	b := newBus(t, broker(t), nil)
	held := make(chan *rpcbus.Delivery, 1)
	s := subscribe(t, b, rpcbus.SubscribeOptions{Topics: []string{"req"}, Group: "g"}, func(d *rpcbus.Delivery) { held <- d })
	publish(t, b, "req", "m0")
	d := recv(t, held)
	closed := make(chan error, 1)
	go func() { closed <- s.Close(context.Background()) }()
	d.Ack() // Close returns only after this, whenever it starts
	if err := recv(t, closed); err != nil {
		t.Fatalf("Close after every ack = %v, want nil", err)
	}

	got := make(chan string, 1)
	subscribe(t, b, rpcbus.SubscribeOptions{Topics: []string{"req"}, Group: "g"}, forward(got))
	publish(t, b, "req", "m1")
	if v := recv(t, got); v != "m1" {
		t.Errorf("next member got %q, want m1 (m0 was acknowledged)", v)
	}
}

func TestMaxInFlight(t *testing.T) {
	t.Parallel()
	b := newBus(t, broker(t), nil)
	var (
		mu     sync.Mutex
		events []string
	)
	note := func(e string) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}
	held := make(chan *rpcbus.Delivery, 10)
	subscribe(t, b, rpcbus.SubscribeOptions{Topics: []string{"req"}, Group: "g", MaxInFlight: 2}, func(d *rpcbus.Delivery) {
		note(string(d.Value))
		held <- d
	})
	publish(t, b, "req", seq("m", 5)...)
	first := recvN(t, held, 2)

	// The full member takes nothing more, so a second member gets the rest.
	got := make(chan string, 5)
	second := subscribe(t, b, rpcbus.SubscribeOptions{Topics: []string{"req"}, Group: "g"}, forward(got))
	if g := recvN(t, got, 3); !slices.Equal(g, []string{"m2", "m3", "m4"}) {
		t.Errorf("second member got %v, want [m2 m3 m4]", g)
	}
	if err := second.Close(t.Context()); err != nil {
		t.Fatal(err)
	}

	// An ack makes room for exactly one more.
	publish(t, b, "req", "m5", "m6")
	note("ack")
	first[0].Ack()
	d5 := recv(t, held)
	if string(d5.Value) != "m5" {
		t.Errorf("after one ack got %q, want m5", d5.Value)
	}
	note("ack")
	first[1].Ack()
	d6 := recv(t, held)
	if string(d6.Value) != "m6" {
		t.Errorf("after the second ack got %q, want m6", d6.Value)
	}
	d5.Ack()
	d6.Ack()
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"m0", "m1", "ack", "m5", "ack", "m6"}; !slices.Equal(events, want) {
		t.Errorf("first member saw %v, want %v", events, want)
	}
}

func TestBacklogBounded(t *testing.T) {
	t.Parallel()
	b := newBus(t, broker(t), map[string]any{"max_backlog": 3})
	if err := b.CreateTopics(t.Context(), "req"); err != nil {
		t.Fatal(err)
	}
	publish(t, b, "req", "m0", "m1", "m2")
	err := b.Publish(t.Context(), "req", &rpcbus.Message{Value: []byte("m3")})
	if !errors.Is(err, memory.ErrBacklogFull) || !strings.Contains(err.Error(), "max_backlog") {
		t.Fatalf("Publish beyond max_backlog = %v, want ErrBacklogFull naming max_backlog", err)
	}

	// Acknowledged by every group, messages are dropped, making room.
	got := make(chan string, 3)
	s := subscribe(t, b, rpcbus.SubscribeOptions{Topics: []string{"req"}, Group: "g"}, forward(got))
	recvN(t, got, 3) // forward acks before it sends
	publish(t, b, "req", "m3", "m4", "m5")
	if g := recvN(t, got, 3); !slices.Equal(g, []string{"m3", "m4", "m5"}) {
		t.Errorf("got %v, want [m3 m4 m5]", g)
	}

	// The group outlives its member and keeps holding what it has not seen.
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	publish(t, b, "req", "m6", "m7", "m8")
	if err := b.Publish(t.Context(), "req", &rpcbus.Message{}); !errors.Is(err, memory.ErrBacklogFull) {
		t.Fatalf("Publish with a memberless group behind = %v, want ErrBacklogFull", err)
	}
	// A new group starts at the oldest message kept: m6.
	other := make(chan string, 3)
	subscribe(t, b, rpcbus.SubscribeOptions{Topics: []string{"req"}, Group: "new"}, forward(other))
	if g := recvN(t, other, 3); !slices.Equal(g, []string{"m6", "m7", "m8"}) {
		t.Errorf("new group got %v, want [m6 m7 m8]", g)
	}
}

func TestInbox(t *testing.T) {
	t.Parallel()
	name := t.Name()
	client := newBus(t, []string{name}, nil)
	server := newBus(t, []string{name}, nil)

	newInbox := func() (rpcbus.Inbox, chan *rpcbus.Message) {
		ch := make(chan *rpcbus.Message, 200)
		ib, err := client.Inbox(t.Context(), "client-1", func(m *rpcbus.Message) { ch <- m })
		if err != nil {
			t.Fatalf("Inbox: %v", err)
		}
		t.Cleanup(func() { _ = ib.Close() })
		return ib, ch
	}
	a, aCh := newInbox()
	b, bCh := newInbox()
	if a.Address() == b.Address() || !strings.HasPrefix(a.Address(), "client-1.") {
		t.Fatalf("addresses %q and %q: want distinct, prefixed by the name", a.Address(), b.Address())
	}

	// From another bus on the broker, with no CreateTopics.
	publish(t, server, b.Address(), "for b")
	want := append(seq("for a ", 100), "end")
	publish(t, server, a.Address(), want...)
	var got []string
	for _, m := range recvN(t, aCh, len(want)) {
		if m.Topic != a.Address() {
			t.Errorf("message topic %q, want %q", m.Topic, a.Address())
		}
		got = append(got, string(m.Value))
	}
	// In publish order, and nothing of b's: it would have come first.
	if !slices.Equal(got, want) {
		t.Errorf("inbox a got %v, want %v", got, want)
	}
	if m := recv(t, bCh); string(m.Value) != "for b" {
		t.Errorf("inbox b got %q, want %q", m.Value, "for b")
	}

	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := a.Close(); !errors.Is(err, rpcbus.ErrClosed) {
		t.Errorf("second Close = %v, want ErrClosed", err)
	}
	if err := server.Publish(t.Context(), a.Address(), &rpcbus.Message{}); !errors.Is(err, rpcbus.ErrUnknownTopic) {
		t.Errorf("Publish to a closed inbox = %v, want ErrUnknownTopic", err)
	}
}

func TestInboxBacklogBounded(t *testing.T) {
	t.Parallel()
	b := newBus(t, broker(t), map[string]any{"max_backlog": 2})
	release := make(chan struct{})
	got := make(chan string, 3)
	ib, err := b.Inbox(t.Context(), "c", func(m *rpcbus.Message) {
		got <- string(m.Value)
		<-release
	})
	if err != nil {
		t.Fatal(err)
	}
	publish(t, b, ib.Address(), "m0")
	recv(t, got) // the handler holds m0; nothing waits
	publish(t, b, ib.Address(), "m1", "m2")
	if err := b.Publish(t.Context(), ib.Address(), &rpcbus.Message{}); !errors.Is(err, memory.ErrBacklogFull) {
		t.Errorf("Publish to a full inbox = %v, want ErrBacklogFull", err)
	}
	close(release)
	if g := recvN(t, got, 2); !slices.Equal(g, []string{"m1", "m2"}) {
		t.Errorf("got %v, want [m1 m2]", g)
	}
	if err := ib.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestMaxMessageBytes(t *testing.T) {
	t.Parallel()
	b := newBus(t, broker(t), map[string]any{"max_message_bytes": 10})
	if err := b.CreateTopics(t.Context(), "req"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		msg  rpcbus.Message
		ok   bool
	}{
		{"value at the limit", rpcbus.Message{Value: make([]byte, 10)}, true},
		{"value over", rpcbus.Message{Value: make([]byte, 11)}, false},
		{"key and value over", rpcbus.Message{Key: []byte("k"), Value: make([]byte, 10)}, false},
		{"headers at the limit", rpcbus.Message{Value: make([]byte, 8), Headers: map[string]string{"h": "v"}}, true},
		{"headers over", rpcbus.Message{Value: make([]byte, 9), Headers: map[string]string{"h": "v"}}, false},
	} {
		err := b.Publish(t.Context(), "req", &tc.msg)
		if tc.ok && err != nil {
			t.Errorf("%s: Publish = %v, want nil", tc.name, err)
		}
		if !tc.ok && (!errors.Is(err, rpcbus.ErrMessageTooLarge) || !strings.Contains(err.Error(), "max_message_bytes")) {
			t.Errorf("%s: Publish = %v, want ErrMessageTooLarge naming max_message_bytes", tc.name, err)
		}
	}
	ib, err := b.Inbox(t.Context(), "c", func(*rpcbus.Message) {})
	if err != nil {
		t.Fatal(err)
	}
	defer ib.Close()
	if err := b.Publish(t.Context(), ib.Address(), &rpcbus.Message{Value: make([]byte, 11)}); !errors.Is(err, rpcbus.ErrMessageTooLarge) {
		t.Errorf("Publish to an inbox over the limit = %v, want ErrMessageTooLarge", err)
	}
}

func TestSettingsErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		brokers  []string
		settings map[string]any
		want     string
	}{
		{"unknown key", nil, map[string]any{"max_backlogg": 1}, `rpc_bus.settings: unknown key "max_backlogg"`},
		{"wrong type", nil, map[string]any{"max_backlog": "lots"}, "rpc_bus.settings.max_backlog: want a number"},
		{"zero backlog", nil, map[string]any{"max_backlog": 0}, "rpc_bus.settings.max_backlog: must be at least 1"},
		{"negative size", nil, map[string]any{"max_message_bytes": -1}, "rpc_bus.settings.max_message_bytes: must be at least 1"},
		{"empty broker name", []string{""}, nil, "rpc_bus.brokers[0] is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := rpcbus.Config{Type: "memory", Brokers: tc.brokers, Settings: tc.settings}
			if _, err := memory.New(cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("memory.New = %v, want an error containing %q", err, tc.want)
			}
			// The same through the registry, with no typed nil.
			if b, err := rpcbus.New(cfg); err == nil || b != nil {
				t.Errorf("rpcbus.New = %v, %v; want nil, error", b, err)
			}
		})
	}
}

func TestRegistered(t *testing.T) {
	t.Parallel()
	b, err := rpcbus.New(rpcbus.Config{Type: "memory", Settings: map[string]any{"max_backlog": 10, "max_message_bytes": 100}})
	if err != nil {
		t.Fatalf("rpcbus.New: %v", err)
	}
	defer b.Close()
	if _, ok := b.(rpcbus.Inboxer); !ok {
		t.Error("memory bus is not an rpcbus.Inboxer")
	}
	if _, ok := b.(rpcbus.TopicCreator); !ok {
		t.Error("memory bus is not an rpcbus.TopicCreator")
	}
}

func TestClosed(t *testing.T) {
	t.Parallel()
	b := newBus(t, broker(t), nil)
	ctx := t.Context()
	s := subscribe(t, b, rpcbus.SubscribeOptions{Topics: []string{"req"}, Group: "g"}, func(d *rpcbus.Delivery) { d.Ack() })
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); !errors.Is(err, rpcbus.ErrClosed) {
		t.Errorf("second Subscription.Close = %v, want ErrClosed", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	h := func(*rpcbus.Message) {}
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"Publish", b.Publish(ctx, "req", &rpcbus.Message{})},
		{"CreateTopics", b.CreateTopics(ctx, "req")},
		{"Subscribe", func() error {
			_, err := b.Subscribe(ctx, rpcbus.SubscribeOptions{Topics: []string{"req"}}, func(*rpcbus.Delivery) {})
			return err
		}()},
		{"Inbox", func() error { _, err := b.Inbox(ctx, "c", h); return err }()},
		{"Close", b.Close()},
	} {
		if !errors.Is(tc.err, rpcbus.ErrClosed) {
			t.Errorf("%s on a closed bus = %v, want ErrClosed", tc.name, tc.err)
		}
	}
}

// Bus.Close stops what was left open: goleak in TestMain checks the
// goroutines are gone, and the held delivery goes back to the group.
func TestBusCloseStopsEverything(t *testing.T) {
	t.Parallel()
	name := t.Name()
	b := newBus(t, []string{name}, nil)
	keep := newBus(t, []string{name}, nil) // keeps the broker alive
	held := make(chan *rpcbus.Delivery, 1)
	s, err := b.Subscribe(t.Context(), rpcbus.SubscribeOptions{Topics: []string{"req"}, Group: "g"}, func(d *rpcbus.Delivery) { held <- d })
	if err != nil {
		t.Fatal(err)
	}
	ib, err := b.Inbox(t.Context(), "c", func(*rpcbus.Message) {})
	if err != nil {
		t.Fatal(err)
	}
	publish(t, b, "req", "m0")
	d := recv(t, held)
	if err := b.Close(); err != nil {
		t.Fatalf("Bus.Close: %v", err)
	}
	d.Ack() // too late: the member is gone
	if err := s.Close(t.Context()); !errors.Is(err, rpcbus.ErrClosed) {
		t.Errorf("Subscription.Close after Bus.Close = %v, want ErrClosed", err)
	}
	if err := ib.Close(); !errors.Is(err, rpcbus.ErrClosed) {
		t.Errorf("Inbox.Close after Bus.Close = %v, want ErrClosed", err)
	}
	got := make(chan string, 1)
	subscribe(t, keep, rpcbus.SubscribeOptions{Topics: []string{"req"}, Group: "g"}, forward(got))
	if v := recv(t, got); v != "m0" {
		t.Errorf("got %q, want m0 delivered again", v)
	}
}

func TestSubscribeMultipleTopics(t *testing.T) {
	t.Parallel()
	b := newBus(t, broker(t), nil)
	got := make(chan string, 20)
	subscribe(t, b, rpcbus.SubscribeOptions{Topics: []string{"a", "b", "a"}, Group: "g"}, func(d *rpcbus.Delivery) {
		d.Ack()
		got <- d.Topic + "/" + string(d.Value)
	})
	publish(t, b, "a", seq("x", 5)...)
	publish(t, b, "b", seq("y", 5)...)
	var fromA, fromB []string
	for _, v := range recvN(t, got, 10) {
		topic, value, _ := strings.Cut(v, "/")
		switch topic {
		case "a":
			fromA = append(fromA, value)
		case "b":
			fromB = append(fromB, value)
		}
	}
	if !slices.Equal(fromA, seq("x", 5)) || !slices.Equal(fromB, seq("y", 5)) {
		t.Errorf("got a=%v b=%v, want each topic once and in order", fromA, fromB)
	}
}

func TestSubscribeOptionsErrors(t *testing.T) {
	t.Parallel()
	b := newBus(t, broker(t), nil)
	nop := func(*rpcbus.Delivery) {}
	for _, tc := range []struct {
		name string
		opts rpcbus.SubscribeOptions
		h    rpcbus.Handler
	}{
		{"no topics", rpcbus.SubscribeOptions{Group: "g"}, nop},
		{"empty topic", rpcbus.SubscribeOptions{Topics: []string{""}}, nop},
		{"negative MaxInFlight", rpcbus.SubscribeOptions{Topics: []string{"t"}, MaxInFlight: -1}, nop},
		{"nil handler", rpcbus.SubscribeOptions{Topics: []string{"t"}}, nil},
	} {
		if _, err := b.Subscribe(t.Context(), tc.opts, tc.h); err == nil {
			t.Errorf("%s: Subscribe succeeded, want an error", tc.name)
		}
	}
}

func BenchmarkPublishDeliver(b *testing.B) {
	bus, err := memory.New(rpcbus.Config{Type: "memory"})
	if err != nil {
		b.Fatal(err)
	}
	defer bus.Close()
	done := make(chan struct{}, 1024)
	s, err := bus.Subscribe(b.Context(), rpcbus.SubscribeOptions{Topics: []string{"bench"}, Group: "g"}, func(d *rpcbus.Delivery) {
		d.Ack()
		done <- struct{}{}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	msg := &rpcbus.Message{Value: make([]byte, 256)}
	b.ReportAllocs()
	for b.Loop() {
		if err := bus.Publish(b.Context(), "bench", msg); err != nil {
			b.Fatal(fmt.Errorf("publish: %w", err))
		}
		<-done
	}
}
