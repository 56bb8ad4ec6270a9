package kafka_test

import (
	"bytes"
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

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/kafka"
)

func closeSub(t testing.TB, s rpcbus.Subscription) {
	t.Helper()
	t.Cleanup(func() { _ = s.Close(ctxFor(t, 30*time.Second)) })
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	b := newBus(t, nil)
	topic := name(t, "requests")
	got := make(chan *rpcbus.Delivery, 1)
	s := subscribe(t, b, rpcbus.SubscribeOptions{Topics: []string{topic}, Group: name(t, "group")},
		func(d *rpcbus.Delivery) { got <- d })
	closeSub(t, s)

	want := rpcbus.Message{
		Key:     []byte("key-1"),
		Value:   []byte("hello"),
		Headers: map[string]string{"reply-to": "inbox-1", "x": ""},
	}
	publish(t, b, topic, &want)
	select {
	case d := <-got:
		if d.Topic != topic || !bytes.Equal(d.Key, want.Key) || !bytes.Equal(d.Value, want.Value) ||
			!maps.Equal(d.Headers, want.Headers) {
			t.Errorf("got %+v, want %+v on topic %s", d.Message, want, topic)
		}
		d.Ack()
	case <-time.After(30 * time.Second):
		t.Fatal("no delivery")
	}
	if err := s.Close(ctxFor(t, 30*time.Second)); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := s.Close(ctxFor(t, time.Second)); !errors.Is(err, rpcbus.ErrClosed) {
		t.Errorf("second Close = %v, want ErrClosed", err)
	}
}

func TestPublishUnknownTopic(t *testing.T) {
	t.Parallel()
	b := newBus(t, nil)
	topic := name(t, "missing")
	err := b.Publish(ctxFor(t, 30*time.Second), topic, &rpcbus.Message{Value: []byte("x")})
	if !errors.Is(err, rpcbus.ErrUnknownTopic) {
		t.Fatalf("Publish to a missing topic = %v, want ErrUnknownTopic", err)
	}
	// Not remembered as missing: once created, it works.
	if err := b.CreateTopics(ctxFor(t, 30*time.Second), topic); err != nil {
		t.Fatal(err)
	}
	publish(t, b, topic, &rpcbus.Message{Value: []byte("x")})
	// Creating again is no error.
	if err := b.CreateTopics(ctxFor(t, 30*time.Second), topic); err != nil {
		t.Fatalf("creating an existing topic: %v", err)
	}
}

func TestPublishTooLarge(t *testing.T) {
	t.Parallel()
	b := newBus(t, map[string]any{"max_message_bytes": 64 << 10})
	topic := name(t, "topic")
	if err := b.CreateTopics(ctxFor(t, 30*time.Second), topic); err != nil {
		t.Fatal(err)
	}
	err := b.Publish(ctxFor(t, 30*time.Second), topic, &rpcbus.Message{Value: make([]byte, 65<<10)})
	if !errors.Is(err, rpcbus.ErrMessageTooLarge) {
		t.Fatalf("Publish of 65 KiB with max_message_bytes 64 KiB = %v, want ErrMessageTooLarge", err)
	}
	publish(t, b, topic, &rpcbus.Message{Value: make([]byte, 60<<10)})
}

// TestLargePayload sends a 4 MiB gRPC payload, plus room for its envelope,
// through a group subscription and an inbox with the default settings.
func TestLargePayload(t *testing.T) {
	t.Parallel()
	b := newBus(t, nil)
	big := bytes.Repeat([]byte("0123456789abcdef"), (4<<20+512)/16)

	topic := name(t, "requests")
	got := make(chan []byte, 1)
	s := subscribe(t, b, rpcbus.SubscribeOptions{Topics: []string{topic}, Group: name(t, "group")},
		func(d *rpcbus.Delivery) { got <- d.Value; d.Ack() })
	closeSub(t, s)
	publish(t, b, topic, &rpcbus.Message{Value: big})
	if v := <-got; !bytes.Equal(v, big) {
		t.Errorf("subscription got %d bytes, want the %d sent", len(v), len(big))
	}

	replies := make(chan []byte, 1)
	ib, err := b.Inbox(ctxFor(t, 30*time.Second), name(t, "inbox"), func(m *rpcbus.Message) { replies <- m.Value })
	if err != nil {
		t.Fatal(err)
	}
	defer ib.Close()
	publish(t, b, ib.Address(), &rpcbus.Message{Value: big})
	if v := <-replies; !bytes.Equal(v, big) {
		t.Errorf("inbox got %d bytes, want the %d sent", len(v), len(big))
	}
}

// TestGroupSplit runs two members of one group while messages flow, acking
// each delivery a little later from another goroutine, so that the second
// member's join revokes partitions with deliveries in flight. Every message
// must be handled exactly once: the revoked member waits for its acks and
// commits before the other takes over.
func TestGroupSplit(t *testing.T) {
	t.Parallel()
	b := newBus(t, nil)
	topic, group := name(t, "requests"), name(t, "group")
	opts := rpcbus.SubscribeOptions{Topics: []string{topic}, Group: group}
	ackLater := func(c *collector) rpcbus.Handler {
		return func(d *rpcbus.Delivery) {
			c.add(d)
			go func() { time.Sleep(time.Millisecond); d.Ack() }()
		}
	}
	c1, c2 := newCollector(), newCollector()
	s1 := subscribe(t, b, opts, ackLater(c1))
	closeSub(t, s1)

	var sent []string
	send := func(n int) {
		for range n {
			v := strconv.Itoa(len(sent))
			// Distinct keys spread the messages over the partitions.
			publish(t, b, topic, &rpcbus.Message{Key: []byte("k" + v), Value: []byte(v)})
			sent = append(sent, v)
		}
	}
	send(50)
	s2 := subscribe(t, b, opts, ackLater(c2))
	closeSub(t, s2)
	// Keep publishing until both members have had some.
	eventually(t, "both members to receive messages", func() bool {
		send(5)
		time.Sleep(10 * time.Millisecond)
		return c1.len() > 0 && c2.len() > 0
	})
	send(50)
	eventually(t, "every message to be delivered", func() bool { return c1.len()+c2.len() >= len(sent) })

	n1, n2 := c1.counts(), c2.counts()
	for _, v := range sent {
		if n := n1[v] + n2[v]; n != 1 {
			t.Errorf("message %s delivered %d times (%d, %d), want once", v, n, n1[v], n2[v])
		}
	}
	if got := c1.len() + c2.len(); got != len(sent) {
		t.Errorf("%d deliveries for %d messages", got, len(sent))
	}
	t.Logf("%d messages: %d to the first member, %d to the second", len(sent), c1.len(), c2.len())
}

// TestOutOfOrderAcks acknowledges ten deliveries of one partition but the
// fourth (#3), then closes. Only the contiguous acknowledged prefix is
// committed, so the group's next member gets #3 and everything after it
// (at least once), but not #0 to #2.
func TestOutOfOrderAcks(t *testing.T) {
	t.Parallel()
	b := newBus(t, nil)
	topic, group := name(t, "requests"), name(t, "group")
	opts := rpcbus.SubscribeOptions{Topics: []string{topic}, Group: group}
	c := newCollector()
	s := subscribe(t, b, opts, c.add)
	for i := range 10 {
		// One key: one partition, in order.
		publish(t, b, topic, &rpcbus.Message{Key: []byte("k"), Value: []byte(strconv.Itoa(i))})
	}
	eventually(t, "10 deliveries", func() bool { return c.len() == 10 })
	ds := c.deliveries()
	// Out of order, from many goroutines, all but #3.
	var wg sync.WaitGroup
	for _, i := range []int{9, 0, 5, 2, 8, 1, 7, 4, 6} {
		wg.Go(func() { ds[i].Ack() })
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := s.Close(ctx); !errors.Is(err, rpcbus.ErrUnacknowledged) {
		t.Errorf("Close with #3 unacknowledged = %v, want ErrUnacknowledged", err)
	}
	ds[3].Ack() // too late, and harmless

	c2 := newCollector()
	s2 := subscribe(t, b, opts, func(d *rpcbus.Delivery) { c2.add(d); d.Ack() })
	closeSub(t, s2)
	eventually(t, "redelivery of #3 to #9", func() bool { return c2.len() >= 7 })
	var got []string
	for _, d := range c2.deliveries() {
		got = append(got, string(d.Value))
	}
	if want := []string{"3", "4", "5", "6", "7", "8", "9"}; !slices.Equal(got, want) {
		t.Errorf("next member got %q, want %q", got, want)
	}
}

// TestMaxInFlight leaves deliveries unacknowledged: the subscription stops
// at MaxInFlight and resumes as they are acknowledged.
func TestMaxInFlight(t *testing.T) {
	t.Parallel()
	b := newBus(t, nil)
	topic := name(t, "requests")
	c := newCollector()
	s := subscribe(t, b, rpcbus.SubscribeOptions{Topics: []string{topic}, Group: name(t, "group"), MaxInFlight: 5}, c.add)
	closeSub(t, s)
	for i := range 20 {
		publish(t, b, topic, &rpcbus.Message{Key: []byte(strconv.Itoa(i)), Value: []byte(strconv.Itoa(i))})
	}
	eventually(t, "5 deliveries", func() bool { return c.len() >= 5 })
	// Absence can only be checked over some time; a slow machine makes
	// this check weaker, never flaky.
	time.Sleep(200 * time.Millisecond)
	if n := c.len(); n != 5 {
		t.Fatalf("%d deliveries with MaxInFlight 5 and none acknowledged, want 5", n)
	}
	ds := c.deliveries()
	ds[0].Ack()
	ds[1].Ack()
	eventually(t, "2 more deliveries", func() bool { return c.len() >= 7 })
	time.Sleep(100 * time.Millisecond)
	if n := c.len(); n != 7 {
		t.Fatalf("%d deliveries after 2 of 5 acknowledged, want 7", n)
	}
	// Acknowledge everything as it comes: all 20 arrive.
	for done := 2; done < 20; {
		eventually(t, "more deliveries", func() bool { return c.len() > done })
		ds = c.deliveries()
		for _, d := range ds[done:] {
			d.Ack()
		}
		done = len(ds)
	}
	if n := c.len(); n != 20 {
		t.Errorf("%d deliveries, want 20", n)
	}
}

// TestInbox checks that an inbox sees what is published to its address
// after Inbox returns, that two inboxes with one name have addresses (and
// topics) of their own, made with retention.ms of reply_retention, and
// that Close deletes its topic.
func TestInbox(t *testing.T) {
	t.Parallel()
	b := newBus(t, map[string]any{"heartbeat_interval": "100ms", "reply_retention": "90m"})
	n := name(t, "client")

	type inboxLog struct {
		mu  sync.Mutex
		got []string
	}
	open := func() (*inboxLog, rpcbus.Inbox) {
		l := &inboxLog{}
		ib, err := b.Inbox(ctxFor(t, 30*time.Second), n, func(m *rpcbus.Message) {
			l.mu.Lock()
			l.got = append(l.got, string(m.Value))
			l.mu.Unlock()
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ib.Close() })
		if !strings.HasPrefix(ib.Address(), n+".") || !rpcbus.ValidName(ib.Address()) {
			t.Fatalf("Address() = %q, want %q, a dot and a suffix", ib.Address(), n)
		}
		return l, ib
	}
	l1, ib1 := open()
	l2, ib2 := open()
	if ib1.Address() == ib2.Address() {
		t.Fatalf("two inboxes named %q share the address %q", n, ib1.Address())
	}
	for i := range 3 {
		publish(t, b, ib1.Address(), &rpcbus.Message{Key: []byte("k"), Value: []byte(fmt.Sprint("one", i))})
		publish(t, b, ib2.Address(), &rpcbus.Message{Key: []byte("k"), Value: []byte(fmt.Sprint("two", i))})
	}
	for i, l := range []*inboxLog{l1, l2} {
		want := []string{"one0", "one1", "one2"}
		if i == 1 {
			want = []string{"two0", "two1", "two2"}
		}
		eventually(t, "3 replies", func() bool { l.mu.Lock(); defer l.mu.Unlock(); return len(l.got) >= 3 })
		l.mu.Lock()
		if !slices.Equal(l.got, want) {
			t.Errorf("inbox %d got %q, want %q", i+1, l.got, want)
		}
		l.mu.Unlock()
	}

	adm := kadm.NewClient(newRawClient(t))
	ctx := ctxFor(t, 30*time.Second)
	cfgs, err := adm.DescribeTopicConfigs(ctx, ib1.Address())
	if err != nil {
		t.Fatal(err)
	}
	if c, err := cfgs.On(ib1.Address(), nil); err != nil {
		t.Errorf("configs of %s: %v", ib1.Address(), err)
	} else if v := configValue(c, "retention.ms"); v != "5400000" {
		t.Errorf("retention.ms of the inbox topic = %q, want 5400000 (reply_retention 90m)", v)
	}

	if err := ib1.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := ib1.Close(); !errors.Is(err, rpcbus.ErrClosed) {
		t.Errorf("second Close = %v, want ErrClosed", err)
	}
	have := topicNames(t, newRawClient(t))
	if slices.Contains(have, ib1.Address()) || !slices.Contains(have, ib2.Address()) {
		t.Errorf("after closing inbox 1, topics %v: want inbox 2's and not inbox 1's", have)
	}
	if err := b.Publish(ctx, ib1.Address(), &rpcbus.Message{Value: []byte("late")}); !errors.Is(err, rpcbus.ErrUnknownTopic) {
		t.Errorf("Publish to a closed inbox = %v, want ErrUnknownTopic", err)
	}
}

// configValue is the value of key in a topic's described configs.
func configValue(c kadm.ResourceConfig, key string) string {
	for _, e := range c.Configs {
		if e.Key == key && e.Value != nil {
			return *e.Value
		}
	}
	return ""
}

func TestInboxAllPartitions(t *testing.T) {
	t.Parallel()
	b := newBus(t, nil)
	var mu sync.Mutex
	got := map[string]bool{}
	ib, err := b.Inbox(ctxFor(t, 30*time.Second), name(t, "client"), func(m *rpcbus.Message) {
		mu.Lock()
		got[string(m.Value)] = true
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ib.Close()
	for i := range 40 { // distinct keys: every partition
		publish(t, b, ib.Address(), &rpcbus.Message{Key: []byte(strconv.Itoa(i)), Value: []byte(strconv.Itoa(i))})
	}
	eventually(t, "40 replies", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 40 })
}

func TestClosedBus(t *testing.T) {
	t.Parallel()
	b := newBus(t, nil)
	topic := name(t, "requests")
	s := subscribe(t, b, rpcbus.SubscribeOptions{Topics: []string{topic}, Group: name(t, "group")}, func(d *rpcbus.Delivery) {})
	ib, err := b.Inbox(ctxFor(t, 30*time.Second), name(t, "inbox"), func(*rpcbus.Message) {})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	// Bus.Close closed what was still open.
	if err := s.Close(ctxFor(t, time.Second)); !errors.Is(err, rpcbus.ErrClosed) {
		t.Errorf("Close of a subscription of a closed bus = %v, want ErrClosed", err)
	}
	if err := ib.Close(); !errors.Is(err, rpcbus.ErrClosed) {
		t.Errorf("Close of an inbox of a closed bus = %v, want ErrClosed", err)
	}
	ctx := ctxFor(t, time.Second)
	if err := b.Publish(ctx, topic, &rpcbus.Message{}); !errors.Is(err, rpcbus.ErrClosed) {
		t.Errorf("Publish = %v, want ErrClosed", err)
	}
	if _, err := b.Subscribe(ctx, rpcbus.SubscribeOptions{Topics: []string{topic}, Group: "g"}, func(*rpcbus.Delivery) {}); !errors.Is(err, rpcbus.ErrClosed) {
		t.Errorf("Subscribe = %v, want ErrClosed", err)
	}
	if _, err := b.Inbox(ctx, "x", func(*rpcbus.Message) {}); !errors.Is(err, rpcbus.ErrClosed) {
		t.Errorf("Inbox = %v, want ErrClosed", err)
	}
	if err := b.CreateTopics(ctx, "x"); !errors.Is(err, rpcbus.ErrClosed) {
		t.Errorf("CreateTopics = %v, want ErrClosed", err)
	}
}

func TestRegistry(t *testing.T) {
	t.Parallel()
	types := rpcbus.Types()
	if !slices.Contains(types, "kafka") {
		t.Errorf("rpcbus.Types() = %q, missing %q", types, "kafka")
	}
	b, err := rpcbus.New(rpcbus.Config{Type: "kafka", Brokers: []string{broker.Addr()}})
	if err != nil {
		t.Fatalf("rpcbus.New(kafka): %v", err)
	}
	topic := name(t, "kafka")
	if err := b.(rpcbus.TopicCreator).CreateTopics(ctxFor(t, 30*time.Second), topic); err != nil {
		t.Fatal(err)
	}
	publish(t, b, topic, &rpcbus.Message{Value: []byte("x")})
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := rpcbus.New(rpcbus.Config{Type: "kafka", Settings: map[string]any{"acks": "some"}}); err == nil {
		t.Error("rpcbus.New with a bad setting succeeded")
	}
}

func TestSettings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		settings map[string]any
		want     string // in the error; "" for none
	}{
		{settings: nil},
		{settings: map[string]any{"batch_size": 100}}, // the seed's
		{settings: map[string]any{
			"compression": "zstd", "batch_size": 1 << 20, "linger": "5ms", "acks": "leader",
			"partitions": 8, "replication_factor": 1, "max_message_bytes": 8 << 20,
			"dial_timeout": "3s", "session_timeout": "10s", "heartbeat_interval": "1s",
			"revoke_timeout": "5s", "fetch_max_wait": "10ms",
		}},
		{settings: map[string]any{"acks": "none"}},
		{settings: map[string]any{"compresion": "gzip"}, want: `rpc_bus.settings.compresion: unknown key (did you mean compression?`},
		{settings: map[string]any{"data_dir": "/tmp"}, want: "rpc_bus.settings.data_dir: unknown key"},
		{settings: map[string]any{"compression": "lzma"}, want: "rpc_bus.settings.compression: \"lzma\" is not supported (want none, gzip, snappy, lz4 or zstd)"},
		{settings: map[string]any{"acks": 1}, want: "rpc_bus.settings.acks: want a string"},
		{settings: map[string]any{"acks": "1"}, want: "rpc_bus.settings.acks"},
		{settings: map[string]any{"linger": "soon"}, want: "rpc_bus.settings.linger"},
		{settings: map[string]any{"linger": "-1ms"}, want: "rpc_bus.settings.linger"},
		{settings: map[string]any{"batch_size": -1}, want: "rpc_bus.settings.batch_size"},
		{settings: map[string]any{"batch_size": 6 << 20}, want: "rpc_bus.settings.batch_size"},
		{settings: map[string]any{"max_message_bytes": 100}, want: "rpc_bus.settings.max_message_bytes"},
		{settings: map[string]any{"partitions": 0}, want: "rpc_bus.settings.partitions"},
		{settings: map[string]any{"replication_factor": 0}, want: "rpc_bus.settings.replication_factor"},
		{settings: map[string]any{"fetch_max_wait": "1ms"}, want: "rpc_bus.settings.fetch_max_wait"},
		{settings: map[string]any{"heartbeat_interval": "1m"}, want: "rpc_bus.settings.heartbeat_interval"},
	} {
		b, err := kafka.New(rpcbus.Config{Brokers: []string{"127.0.0.1:0"}, Settings: tc.settings})
		if err == nil {
			_ = b.Close()
		}
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("settings %v: %v", tc.settings, err)
		case tc.want != "" && (err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.want))):
			t.Errorf("settings %v: error %v, want one containing %q", tc.settings, err, tc.want)
		case tc.want != "":
			var se *kafka.SettingError
			if !errors.As(err, &se) {
				t.Errorf("settings %v: error %T is not a *SettingError", tc.settings, err)
			}
		}
	}
}

// TestCanceledPublishFailsNoOther: a publisher that gives up fails only its
// own publish. franz-go fails a partition's whole batch when the first
// record's context ends, so a record must not carry its caller's context:
// else one caller cancelling fails the calls (and replies) batched behind it.
func TestCanceledPublishFailsNoOther(t *testing.T) {
	t.Parallel()
	b := newBus(t, map[string]any{"partitions": 1, "linger": "5ms"})
	topic := name(t, "topic")
	if err := b.CreateTopics(ctxFor(t, 30*time.Second), topic); err != nil {
		t.Fatal(err)
	}
	publish(t, b, topic, &rpcbus.Message{Value: []byte("warm")})
	for round := range 20 {
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := range 16 {
			ctx, cancel := context.WithCancel(context.Background())
			wg.Go(func() {
				defer cancel()
				err := b.Publish(ctx, topic, &rpcbus.Message{Value: []byte(strconv.Itoa(i))})
				if i%2 == 0 {
					errs <- err
				}
			})
			if i%2 == 1 {
				time.AfterFunc(time.Duration(round%5)*time.Millisecond, cancel)
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("round %d: a publish no one cancelled failed: %v", round, err)
			}
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
	var got []string
	eventually(t, "both groups of the topic listed", func() bool {
		var err error
		got, err = b.ListGroups(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		return slices.Equal(got, want)
	})
	if err := s2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the group that left gone from the list", func() bool {
		got, _ = b.ListGroups(ctx, topic)
		return slices.Equal(got, []string{g1})
	})
}

// TestInboxSweep: a new inbox deletes the topics of dead inboxes of its
// name (no keepalive for reply_retention), and not those of live ones nor
// other topics.
func TestInboxSweep(t *testing.T) {
	t.Parallel()
	b := newBus(t, map[string]any{"heartbeat_interval": "100ms", "reply_retention": "1m"})
	n := name(t, "client")
	ctx := ctxFor(t, 30*time.Second)
	raw := newRawClient(t)
	adm := kadm.NewClient(raw)
	// dead had its last record two minutes ago; opening had none yet (an
	// inbox being opened); unrelated is not an inbox's name.
	dead, opening, unrelated := n+".0123456789ab", n+".ba9876543210", n+".not-an-inbox"
	if _, err := adm.CreateTopics(ctx, 2, -1, nil, dead, opening, unrelated); err != nil {
		t.Fatal(err)
	}
	old := &kgo.Record{Topic: dead, Value: []byte("keepalive"), Timestamp: time.Now().Add(-2 * time.Minute)}
	if err := raw.ProduceSync(ctx, old).FirstErr(); err != nil {
		t.Fatal(err)
	}
	live, err := b.Inbox(ctx, n, func(*rpcbus.Message) {})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()

	fresh, err := b.Inbox(ctx, n, func(*rpcbus.Message) {})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	eventually(t, "the dead inbox's topic deleted", func() bool { return !slices.Contains(topicNames(t, raw), dead) })
	have := topicNames(t, raw)
	for _, keep := range []string{live.Address(), fresh.Address(), opening, unrelated} {
		if !slices.Contains(have, keep) {
			t.Errorf("topic %s was deleted", keep)
		}
	}
}

// topicNames asks the broker for its topics now (kadm answers from a
// metadata cache a few seconds old).
func topicNames(t *testing.T, cl *kgo.Client) []string {
	t.Helper()
	resp, err := kmsg.NewPtrMetadataRequest().RequestWith(ctxFor(t, 30*time.Second), cl)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, rt := range resp.Topics {
		if rt.Topic != nil && rt.ErrorCode == 0 {
			names = append(names, *rt.Topic)
		}
	}
	return names
}
