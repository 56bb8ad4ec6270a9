package nats_test

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/nats"
)

func TestRegistered(t *testing.T) {
	t.Parallel()
	if !slices.Contains(rpcbus.Types(), "nats") {
		t.Fatalf("rpcbus.Types() = %q, want nats among them", rpcbus.Types())
	}
	// A bad configuration fails before any connection, with no typed nil.
	b, err := rpcbus.New(rpcbus.Config{Type: "nats", Settings: map[string]any{"ack_wait": "soon"}})
	if err == nil || b != nil {
		t.Fatalf("rpcbus.New with a bad setting = %v, %v; want nil and an error", b, err)
	}
	needServer(t)
	b, err = rpcbus.New(rpcbus.Config{Type: "nats", Brokers: []string{serverAddr}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, ok := b.(rpcbus.Inboxer); !ok {
		t.Error("the nats bus is not an rpcbus.Inboxer")
	}
	if _, ok := b.(rpcbus.TopicCreator); !ok {
		t.Error("the nats bus is not an rpcbus.TopicCreator")
	}
}

// TestSettings: rpc_bus.settings are decoded strictly, every error names
// its key, and settings that decode reach a real connection. (Every key's
// checks are in options_test.go.)
func TestSettings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		brokers  []string
		settings map[string]any
		want     string
	}{
		{nil, map[string]any{"tokn": "x"}, `rpc_bus.settings.tokn: unknown key (did you mean token? known: ack_wait, connect_timeout, creds_file, max_age, max_bytes, password, reconnect_wait, replicas, storage, tls, tls_ca_file, tls_cert_file, tls_insecure_skip_verify, tls_key_file, tls_server_name, token, user)`},
		{nil, map[string]any{"max_bytes": "lots"}, "rpc_bus.settings.max_bytes: want a number"},
		{nil, map[string]any{"storage": "tape"}, "rpc_bus.settings.storage"},
		{nil, map[string]any{"tls_cert_file": "/nonexistent/cert.pem", "tls_key_file": "/nonexistent/key.pem"}, "rpc_bus.settings.tls_cert_file"},
		{[]string{serverAddr, " "}, nil, "rpc_bus.brokers[1] is empty"},
		{[]string{serverAddr, "http://alice:s3cret@127.0.0.1:4222"}, nil, `rpc_bus.brokers[1] "http://alice:xxxxx@127.0.0.1:4222": scheme "http" is not supported (want host:port, nats://`},
	} {
		_, err := nats.New(rpcbus.Config{Type: "nats", Brokers: tc.brokers, Settings: tc.settings})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("settings %v: error %v, want one containing %q", tc.settings, err, tc.want)
		}
		var se *nats.SettingError
		if tc.settings != nil && !errors.As(err, &se) {
			t.Errorf("settings %v: error %T is not a *SettingError", tc.settings, err)
		}
	}

	// Nothing listens on port 1: New does not fail (the bus connects in
	// the background); what waits for it fails at its deadline with
	// rpcbus.ErrUnavailable, saying where and how.
	nb, err := nats.New(rpcbus.Config{Type: "nats", Brokers: []string{"127.0.0.1:1"}, Settings: map[string]any{"connect_timeout": "1s"}})
	if err != nil {
		t.Fatalf("New with no server: %v", err)
	}
	err = nb.CreateTopics(ctxFor(t, 500*time.Millisecond), "vrpc.nothing")
	nb.Close()
	if !rpcbus.Unreachable(err) || !strings.Contains(err.Error(), "127.0.0.1:1") || !strings.Contains(err.Error(), "nats-server -js") {
		t.Errorf("connecting to nothing: %v", err)
	}

	// A full set of settings works against the real server, which
	// accepts any user when it has no authorization configured.
	b := newBus(t, map[string]any{
		"user": "vrpc", "password": "secret", "connect_timeout": "3s", "reconnect_wait": "1s",
		"ack_wait": "10s", "max_age": "1m", "max_bytes": 1 << 20, "replicas": 1, "storage": "memory",
	})
	topic := name(t, "topic")
	if err := b.CreateTopics(ctxFor(t, 30*time.Second), topic); err != nil {
		t.Fatal(err)
	}
	s, err := admin(t).Stream(ctxFor(t, 30*time.Second), nats.StreamName(topic))
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	if cfg.MaxAge != time.Minute || cfg.MaxBytes != 1<<20 || cfg.Storage != jetstream.MemoryStorage ||
		cfg.Retention != jetstream.InterestPolicy || !slices.Equal(cfg.Subjects, []string{topic}) {
		t.Errorf("stream of %s: %+v, not what the settings say", topic, cfg)
	}
}

// TestKeptUntilAGroupComes: a topic that CreateTopics made keeps what is
// published to it before any group subscribes; the group gets it all.
func TestKeptUntilAGroupComes(t *testing.T) {
	t.Parallel()
	b := newBus(t, nil)
	topic := name(t, "topic")
	ctx := ctxFor(t, 30*time.Second)
	if err := b.CreateTopics(ctx, topic); err != nil {
		t.Fatal(err)
	}
	if err := b.CreateTopics(ctx, topic); err != nil { // again: nothing changes
		t.Fatal(err)
	}
	for _, v := range []string{"a", "b", "c"} {
		publish(t, b, topic, &rpcbus.Message{Value: []byte(v)})
	}
	var got collector
	subscribe(t, newBus(t, nil), rpcbus.SubscribeOptions{Topics: []string{topic}, Group: name(t, "group")}, got.ack)
	eventually(t, "the messages published before the group", func() bool { return got.len() >= 3 })
	if v := got.values(); !slices.Equal(v, []string{"a", "b", "c"}) {
		t.Errorf("the group received %q, want a, b, c", v)
	}
	// The group has taken over from the keeper: acknowledged messages
	// leave the stream.
	s, err := admin(t).Stream(ctx, nats.StreamName(topic))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the stream to empty", func() bool {
		info, err := s.Info(ctx)
		return err == nil && info.State.Msgs == 0 && info.State.Consumers == 1
	})
}

// TestPrivateGroup: a subscription without a group receives everything,
// and its consumer is deleted when it closes.
func TestPrivateGroup(t *testing.T) {
	t.Parallel()
	b := newBus(t, nil)
	topic := name(t, "topic")
	var got collector
	s, err := b.Subscribe(ctxFor(t, 30*time.Second), rpcbus.SubscribeOptions{Topics: []string{topic}}, got.ack)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, b, topic, &rpcbus.Message{Value: []byte("x")})
	eventually(t, "the delivery", func() bool { return got.len() == 1 })
	if err := s.Close(ctxFor(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	st, err := admin(t).Stream(ctxFor(t, 30*time.Second), nats.StreamName(topic))
	if err != nil {
		t.Fatal(err)
	}
	if n := st.CachedInfo().State.Consumers; n != 0 {
		t.Errorf("%d consumers left after the private subscription closed", n)
	}
}

// TestCloseGivesBackAtOnce: deliveries held by a member that closes go to
// the next member at once, not after ack_wait (an hour here).
func TestCloseGivesBackAtOnce(t *testing.T) {
	t.Parallel()
	set := map[string]any{"ack_wait": "1h"}
	pub, first, next := newBus(t, set), newBus(t, set), newBus(t, set)
	topic, group := name(t, "topic"), name(t, "group")
	opts := rpcbus.SubscribeOptions{Topics: []string{topic}, Group: group}
	var held collector
	s, err := first.Subscribe(ctxFor(t, 30*time.Second), opts, held.add)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"m0", "m1", "m2"} {
		publish(t, pub, topic, &rpcbus.Message{Value: []byte(v)})
	}
	eventually(t, "the first member to hold every message", func() bool { return held.len() == 3 })
	err = s.Close(ctxFor(t, 10*time.Millisecond))
	if !errors.Is(err, rpcbus.ErrUnacknowledged) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close holding deliveries = %v, want ErrUnacknowledged and DeadlineExceeded", err)
	}
	var got collector
	subscribe(t, next, opts, got.ack)
	eventually(t, "redelivery to the next member", func() bool { return got.len() >= 3 })
	slices.Sort(got.values())
	if v := got.values(); len(v) != 3 {
		t.Errorf("the next member received %q", v)
	}
}

// TestLongHandlerKeepsItsDelivery: a member working on a delivery for
// longer than ack_wait keeps it (in-progress signals), while another
// member of the group is there to take it.
func TestLongHandlerKeepsItsDelivery(t *testing.T) {
	t.Parallel()
	set := map[string]any{"ack_wait": "1s"}
	pub := newBus(t, set)
	topic, group := name(t, "topic"), name(t, "group")
	opts := rpcbus.SubscribeOptions{Topics: []string{topic}, Group: group}
	// Whichever member receives the first message holds it; everything
	// else is acknowledged at once.
	held := make(chan *rpcbus.Delivery, 1)
	var (
		first sync.Once
		rest  collector
	)
	h := func(d *rpcbus.Delivery) {
		taken := false
		first.Do(func() { held <- d; taken = true })
		if !taken {
			rest.ack(d)
		}
	}
	subscribe(t, newBus(t, set), opts, h)
	subscribe(t, newBus(t, set), opts, h)
	publish(t, pub, topic, &rpcbus.Message{Value: []byte("slow")})
	d := <-held
	// Three ack_waits: a delivery not kept alive would be delivered again
	// meanwhile, to the other member or the same.
	time.Sleep(3 * time.Second)
	d.Ack()
	publish(t, pub, topic, &rpcbus.Message{Value: []byte("marker")})
	eventually(t, "the marker", func() bool { return rest.has("marker") })
	if rest.has("slow") {
		t.Errorf("a delivery being worked on was delivered again: %q", rest.values())
	}
}

// TestInboxes: each inbox has an address of its own, even with one name;
// publishing to the address of a closed inbox is not an error (core NATS
// cannot tell), and inbox addresses are not topics.
func TestInboxes(t *testing.T) {
	t.Parallel()
	b := newBus(t, nil)
	ctx := ctxFor(t, 30*time.Second)
	var a, c collector
	n := name(t, "client")
	ibA, err := b.Inbox(ctx, n, func(m *rpcbus.Message) { a.add(rpcbus.NewDelivery(*m, nil)) })
	if err != nil {
		t.Fatal(err)
	}
	ibC, err := b.Inbox(ctx, n, func(m *rpcbus.Message) { c.add(rpcbus.NewDelivery(*m, nil)) })
	if err != nil {
		t.Fatal(err)
	}
	if ibA.Address() == ibC.Address() || !strings.HasPrefix(ibA.Address(), "_INBOX.vrpc."+n+".") || !rpcbus.ValidName(ibA.Address()) {
		t.Fatalf("addresses %q and %q", ibA.Address(), ibC.Address())
	}
	publish(t, b, ibA.Address(), &rpcbus.Message{Value: []byte("to a")})
	eventually(t, "inbox a's message", func() bool { return a.len() == 1 })
	if err := ibA.Close(); err != nil {
		t.Fatal(err)
	}
	publish(t, b, ibA.Address(), &rpcbus.Message{Value: []byte("to nobody")})
	publish(t, b, ibC.Address(), &rpcbus.Message{Value: []byte("to c")})
	eventually(t, "inbox c's message", func() bool { return c.len() == 1 })
	if a.len() != 1 || !slices.Equal(c.values(), []string{"to c"}) {
		t.Errorf("inbox a got %q, inbox c got %q", a.values(), c.values())
	}
	if err := ibC.Close(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "a..b", "a b"} {
		if _, err := b.Inbox(ctx, bad, func(*rpcbus.Message) {}); err == nil {
			t.Errorf("Inbox(%q) succeeded", bad)
		}
	}
	if err := b.CreateTopics(ctx, ibA.Address()); err == nil {
		t.Errorf("CreateTopics(%q) succeeded: an inbox address became a topic", ibA.Address())
	}
	if err := b.Publish(ctx, "not..a.topic", &rpcbus.Message{}); !errors.Is(err, rpcbus.ErrUnknownTopic) {
		t.Errorf("Publish to an invalid topic = %v, want ErrUnknownTopic", err)
	}
}

// TestKeysAndHeaders: keys and headers of any bytes arrive unchanged at a
// group and at an inbox, through the real server.
func TestKeysAndHeaders(t *testing.T) {
	t.Parallel()
	pub, sub := newBus(t, nil), newBus(t, nil)
	topic := name(t, "topic")
	want := rpcbus.Message{
		Key:     []byte{0, 1, '\r', '\n', 0xff, ' '},
		Value:   []byte("v"),
		Headers: map[string]string{"Nats-Msg-Id": "1", "a b": " padded ", "multi": "line\r\nbreak", "utf8": "héllo", "empty": ""},
	}
	var got, replies collector
	subscribe(t, sub, rpcbus.SubscribeOptions{Topics: []string{topic}, Group: name(t, "group")}, got.ack)
	ib, err := sub.Inbox(ctxFor(t, 30*time.Second), name(t, "client"), func(m *rpcbus.Message) { replies.add(rpcbus.NewDelivery(*m, nil)) })
	if err != nil {
		t.Fatal(err)
	}
	defer ib.Close()
	for range 2 { // twice: "Nats-Msg-Id" must not de-duplicate
		publish(t, pub, topic, &want)
		publish(t, pub, ib.Address(), &want)
	}
	eventually(t, "both copies at the group and the inbox", func() bool { return got.len() == 2 && replies.len() == 2 })
	for _, c := range []*collector{&got, &replies} {
		for _, d := range c.all {
			if !bytes.Equal(d.Key, want.Key) || !maps.Equal(d.Headers, want.Headers) {
				t.Errorf("received key %q headers %q, want key %q headers %q", d.Key, d.Headers, want.Key, want.Headers)
			}
		}
	}
}

// TestMessageTooLarge: a value over the server's max_payload is refused
// with rpcbus.ErrMessageTooLarge, to a topic and to an inbox.
func TestMessageTooLarge(t *testing.T) {
	t.Parallel()
	b := newBus(t, nil)
	topic := name(t, "topic")
	if err := b.CreateTopics(ctxFor(t, 30*time.Second), topic); err != nil {
		t.Fatal(err)
	}
	big := &rpcbus.Message{Value: make([]byte, b.MaxPayload()+2*64)}
	for _, to := range []string{topic, "_INBOX.vrpc.nobody.x"} {
		if err := b.Publish(ctxFor(t, 30*time.Second), to, big); !errors.Is(err, rpcbus.ErrMessageTooLarge) {
			t.Errorf("Publish of %d bytes to %s = %v, want ErrMessageTooLarge", len(big.Value), to, err)
		}
	}
	// The largest the bus promises, with a small key, goes through.
	publish(t, b, topic, &rpcbus.Message{Key: []byte("a key of 32 bytes, not more.....")[:32], Value: make([]byte, b.MaxPayload())})
}

// TestAddresses: the server the bus is connected to comes first, once,
// without the credentials it was given.
func TestAddresses(t *testing.T) {
	t.Parallel()
	needServer(t)
	b, err := nats.New(rpcbus.Config{Type: "nats", Brokers: []string{serverAddr, "nats://user:s3cret@127.0.0.1:1"}, Settings: testSettings()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	got := b.Addresses()
	if len(got) != 2 || !strings.HasPrefix(got[0], "nats://") || got[1] != "nats://user:xxxxx@127.0.0.1:1" {
		t.Errorf("Addresses() = %q, want the connected server, then the other redacted", got)
	}
	if err := b.Ping(ctxFor(t, 30*time.Second)); err != nil {
		t.Errorf("Ping: %v", err)
	}

	// Connected with a token in the URL (a server without authentication
	// takes any): the token is not shown either.
	tb, err := nats.New(rpcbus.Config{Type: "nats", Brokers: []string{"nats://s3cret-token@" + hostPort(serverAddr)}, Settings: testSettings()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tb.Close() })
	if got := tb.Addresses(); len(got) != 1 || strings.Contains(got[0], "s3cret") || !strings.Contains(got[0], "xxxxx@") {
		t.Errorf("Addresses() = %q, want the token redacted", got)
	}
}

// hostPort strips a scheme from a server address.
func hostPort(addr string) string {
	if _, rest, ok := strings.Cut(addr, "://"); ok {
		return rest
	}
	return addr
}

// TestConnectErrorRedacted: the error of a failed connection names the
// servers without the passwords and tokens in their URLs.
func TestConnectErrorRedacted(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"nats://alice:s3cret@127.0.0.1:1", "nats://s3cret@127.0.0.1:1", "nats://alice:s3cret@[::1"} {
		b, err := nats.New(rpcbus.Config{Type: "nats", Brokers: []string{addr}, Settings: map[string]any{"connect_timeout": "1s"}})
		if err == nil {
			// No server there: the bus waits for one, and what waits
			// with it fails unavailable.
			err = b.CreateTopics(ctxFor(t, 300*time.Millisecond), "vrpc.redacted")
			b.Close()
			if !rpcbus.Unreachable(err) {
				t.Fatalf("New(%s) then CreateTopics: %v, want rpcbus.ErrUnavailable", addr, err)
			}
		}
		if strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "xxxxx") {
			t.Errorf("New(%s): %v, want the address with its secret redacted", addr, err)
		}
	}
}

// TestListGroups: ListGroups names the groups with a member consuming the
// topic now, and not those of other topics nor those whose members left.
func TestListGroups(t *testing.T) {
	t.Parallel()
	b := newBus(t, nil)
	topic, other := name(t, "topic"), name(t, "other")
	g1, g2, g3 := name(t, "g1"), name(t, "g2"), name(t, "g3")
	ctx := ctxFor(t, 30*time.Second)
	sub := func(group string, topics ...string) rpcbus.Subscription {
		s, err := b.Subscribe(ctx, rpcbus.SubscribeOptions{Topics: topics, Group: group}, func(d *rpcbus.Delivery) { d.Ack() })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close(ctxFor(t, 30*time.Second)) })
		return s
	}
	sub(g1, topic)
	s2 := sub(g2, topic, other)
	sub(g3, other)
	want := []string{g1, g2}
	slices.Sort(want)
	eventually(t, "both groups of the topic listed", func() bool {
		got, err := b.ListGroups(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		return slices.Equal(got, want)
	})
	if err := s2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the group that left gone from the list", func() bool {
		got, err := b.ListGroups(ctx, topic)
		return err == nil && slices.Equal(got, []string{g1})
	})
	if got, err := b.ListGroups(ctx, name(t, "nobody")); err != nil || len(got) != 0 {
		t.Errorf("ListGroups of a topic without a stream = %q, %v", got, err)
	}
}
