package bustest

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nextpkg/vrpc/rpcbus"
)

// testRoundTrip: what one process publishes reaches a subscriber in another
// with its topic, key, value and headers intact.
func testRoundTrip(t *testing.T, s *suite) {
	pub, sub := s.bus(t), s.bus(t)
	topic := name(t, "topic")
	var got recorder
	subscribe(t, sub, rpcbus.SubscribeOptions{Topics: []string{topic}, Group: name(t, "group")}, got.ack)
	want := rpcbus.Message{
		Key:     []byte("key-1"),
		Value:   []byte("value-1"),
		Headers: map[string]string{"vrpc-test": "header value", "empty": ""},
	}
	publish(t, pub, topic, &want)
	waitFor(t, waitLimit, "the delivery", got.atLeast(1))
	m := got.messages()[0]
	if m.Topic != topic {
		t.Errorf("delivered Topic = %q, want %q", m.Topic, topic)
	}
	if !bytes.Equal(m.Key, want.Key) || !bytes.Equal(m.Value, want.Value) {
		t.Errorf("delivered key %q value %q, want key %q value %q", m.Key, m.Value, want.Key, want.Value)
	}
	if !maps.Equal(m.Headers, want.Headers) {
		t.Errorf("delivered headers %q, want %q", m.Headers, want.Headers)
	}
}

// testRequestReply: the exchange of a vRPC call. A server, a member of a
// group, answers each request on the address its "reply-to" header names
// and acknowledges it once the reply is published; the client that opened
// the inbox at that address gets the reply.
func testRequestReply(t *testing.T, s *suite) {
	server, client := s.bus(t), s.bus(t)
	topic := name(t, "requests")
	var handlers sync.WaitGroup
	t.Cleanup(handlers.Wait) // before the buses close
	errs := make(chan error, 1)
	subscribe(t, server, rpcbus.SubscribeOptions{Topics: []string{topic}, Group: name(t, "servers")}, func(d *rpcbus.Delivery) {
		// Off the bus's delivery path, as a vRPC server calls its target.
		handlers.Go(func() {
			reply := &rpcbus.Message{Value: append([]byte("hello, "), d.Value...)}
			if err := server.Publish(limited(t), d.Headers["reply-to"], reply); err != nil {
				select {
				case errs <- fmt.Errorf("publishing the reply to %q: %w", d.Headers["reply-to"], err):
				default: // the first error is enough
				}
			}
			d.Ack()
		})
	})
	var replies recorder
	ib := openInbox(t, inboxer(t, client), name(t, "client"), replies.inbox)
	publish(t, client, topic, &rpcbus.Message{Value: []byte("world"), Headers: map[string]string{"reply-to": ib.Address()}})
	waitFor(t, waitLimit, "the reply", func() error {
		select {
		case err := <-errs:
			t.Fatal(err)
		default:
		}
		return replies.atLeast(1)()
	})
	if got := replies.values(); !slices.Equal(got, []string{"hello, world"}) {
		t.Errorf("the client got %q, want [\"hello, world\"]", got)
	}
}

// testPerKeyOrdering: a single consumer receives the messages of each key
// in the order they were published, keys interleaved.
func testPerKeyOrdering(t *testing.T, s *suite) {
	if s.f.NoPerKeyOrdering {
		t.Skip("Features.NoPerKeyOrdering: the bus does not keep per-key order")
	}
	const perKey = 100
	keys := []string{"a", "b", "c"}
	pub, sub := s.bus(t), s.bus(t)
	topic := name(t, "topic")
	var got recorder
	subscribe(t, sub, rpcbus.SubscribeOptions{Topics: []string{topic}, Group: name(t, "group")}, got.ack)
	for i := range perKey {
		for _, k := range keys {
			publish(t, pub, topic, &rpcbus.Message{Key: []byte(k), Value: []byte(k + "-" + strconv.Itoa(i))})
		}
	}
	waitFor(t, waitLimit, "every message", got.atLeast(perKey*len(keys)))
	byKey := map[string][]string{}
	for _, m := range got.messages() {
		byKey[string(m.Key)] = append(byKey[string(m.Key)], string(m.Value))
	}
	for _, k := range keys {
		if want := values(k, perKey); !slices.Equal(byKey[k], want) {
			t.Errorf("key %q: received %s; want %d messages in publish order", k, sample(byKey[k]), perKey)
		}
	}
}

// testGroupSharesWork: two members of a group, in two processes, receive
// each message of the topic once between them.
func testGroupSharesWork(t *testing.T, s *suite) {
	pub := s.bus(t)
	topic, group := name(t, "topic"), name(t, "group")
	var a, b recorder
	subscribe(t, s.bus(t), rpcbus.SubscribeOptions{Topics: []string{topic}, Group: group}, a.ack)
	subscribe(t, s.bus(t), rpcbus.SubscribeOptions{Topics: []string{topic}, Group: group}, b.ack)
	want := values("m", 200)
	publishValues(t, pub, topic, nil, want)
	waitFor(t, waitLimit, "every message", func() error {
		if n := a.len() + b.len(); n < len(want) {
			return fmt.Errorf("%d of %d messages received (%d and %d)", n, len(want), a.len(), b.len())
		}
		return nil
	})
	checkExactlyOnce(t, "the group", counts(&a, &b), want)
	t.Logf("the members received %d and %d messages", a.len(), b.len())
}

// testGroupSpreadsWork: with two members in a group, both get work. The
// test publishes in batches until each member has received some, then
// checks every message went to exactly one of them.
func testGroupSpreadsWork(t *testing.T, s *suite) {
	if s.f.NoWorkSpreading {
		t.Skip("Features.NoWorkSpreading: the bus may give one member all the work")
	}
	pub := s.bus(t)
	topic, group := name(t, "topic"), name(t, "group")
	var a, b recorder
	subscribe(t, s.bus(t), rpcbus.SubscribeOptions{Topics: []string{topic}, Group: group}, a.ack)
	subscribe(t, s.bus(t), rpcbus.SubscribeOptions{Topics: []string{topic}, Group: group}, b.ack)
	sent := publishUntil(t, pub, topic, "m", func() int { return a.len() + b.len() }, func() error {
		if a.len() == 0 || b.len() == 0 {
			return fmt.Errorf("the members received %d and %d", a.len(), b.len())
		}
		return nil
	})
	checkExactlyOnce(t, "the group", counts(&a, &b), sent)
	t.Logf("%d messages: the members received %d and %d", len(sent), a.len(), b.len())
}

// publishUntil publishes batches of ten new messages to topic until done
// returns nil, and returns the values sent. It waits for each batch to be
// received (received counts every message received so far), so that the
// consumers, not a clock, pace it.
func publishUntil(t *testing.T, pub rpcbus.Bus, topic, prefix string, received func() int, done func() error) []string {
	t.Helper()
	var sent []string
	waitFor(t, waitLimit, "publishing until done", func() error {
		batch := values(fmt.Sprintf("%s%d", prefix, len(sent)), 10)
		publishValues(t, pub, topic, nil, batch)
		sent = append(sent, batch...)
		waitFor(t, waitLimit, "the batch", func() error {
			if n := received(); n < len(sent) {
				return fmt.Errorf("%d of %d messages received", n, len(sent))
			}
			return nil
		})
		if err := done(); err != nil {
			return fmt.Errorf("after %d messages: %w", len(sent), err)
		}
		return nil
	})
	return sent
}

// testEveryGroupGetsEverything: each of two groups receives every message
// once.
func testEveryGroupGetsEverything(t *testing.T, s *suite) {
	pub := s.bus(t)
	topic := name(t, "topic")
	var a, b recorder
	subscribe(t, s.bus(t), rpcbus.SubscribeOptions{Topics: []string{topic}, Group: name(t, "group-a")}, a.ack)
	subscribe(t, s.bus(t), rpcbus.SubscribeOptions{Topics: []string{topic}, Group: name(t, "group-b")}, b.ack)
	want := values("m", 100)
	publishValues(t, pub, topic, nil, want)
	waitFor(t, waitLimit, "every message in group a", a.atLeast(len(want)))
	waitFor(t, waitLimit, "every message in group b", b.atLeast(len(want)))
	checkExactlyOnce(t, "group a", counts(&a), want)
	checkExactlyOnce(t, "group b", counts(&b), want)
}

// testNewGroupMaxAge: a group that subscribes for the first time with
// NewGroupMaxAge gets none of the messages published longer ago than that,
// and every one published since; a new group without it keeps the bus's
// default: every message kept (or, with NoHistory, those published after
// it joined). So a server group under a new name does not run requests
// another group served long ago.
func testNewGroupMaxAge(t *testing.T, s *suite) {
	const maxAge = time.Second
	pub := s.bus(t)
	topic := name(t, "topic")
	// A first group makes the topic, and holds its messages unacknowledged
	// so that a bus that keeps messages only for the groups that have not
	// acknowledged them (memory) keeps them too.
	var (
		first    recorder
		mu       sync.Mutex
		released bool // acknowledge from now on
	)
	subscribe(t, s.bus(t), rpcbus.SubscribeOptions{Topics: []string{topic}, Group: name(t, "first")}, func(d *rpcbus.Delivery) {
		mu.Lock()
		defer mu.Unlock()
		if released {
			first.ack(d)
		} else {
			first.hold(d)
		}
	})
	t.Cleanup(func() { // before the subscription's Close, which waits for them
		mu.Lock()
		released = true
		held := first.takeHeld()
		mu.Unlock()
		for _, d := range held {
			d.Ack()
		}
	})
	old := values("old", 20)
	publishValues(t, pub, topic, nil, old)
	waitFor(t, waitLimit, "the old messages in the first group", first.atLeast(len(old)))
	time.Sleep(2 * maxAge) // the old messages are now older than maxAge

	var fresh, replaying recorder
	subscribe(t, s.bus(t), rpcbus.SubscribeOptions{Topics: []string{topic}, Group: name(t, "fresh"), NewGroupMaxAge: maxAge}, fresh.ack)
	subscribe(t, s.bus(t), rpcbus.SubscribeOptions{Topics: []string{topic}, Group: name(t, "replaying")}, replaying.ack)
	recent := values("new", 20)
	publishValues(t, pub, topic, nil, recent)
	all := append(slices.Clone(old), recent...)
	if s.f.NoHistory {
		all = recent
	}
	// The group without the option gets the old messages (if any) too, and
	// first: once it has everything, the new group has had its chance to
	// get them as well.
	waitFor(t, waitLimit, "every message kept in the group without NewGroupMaxAge", replaying.atLeast(len(all)))
	waitFor(t, waitLimit, "the new messages in the group with NewGroupMaxAge", fresh.atLeast(len(recent)))
	checkExactlyOnce(t, "the group without NewGroupMaxAge", counts(&replaying), all)
	checkExactlyOnce(t, "the group with NewGroupMaxAge", counts(&fresh), recent)
}

// testRedeliveryAfterClose: a member that goes away holding deliveries it
// never acknowledged, by closing its subscription with an expired context
// or by closing its whole bus, leaves them to the next member of its group:
// one that joins later, or one already there (MemberPresent). Its
// acknowledgements after it left do not count.
func testRedeliveryAfterClose(t *testing.T, s *suite) {
	t.Run("MemberPresent", func(t *testing.T) {
		t.Parallel()
		testRedeliveryToMemberPresent(t, s)
	})
	for _, tc := range []struct {
		name  string
		leave func(t *testing.T, b rpcbus.Bus, sub rpcbus.Subscription)
	}{
		{"SubscriptionClose", func(t *testing.T, _ rpcbus.Bus, sub rpcbus.Subscription) {
			ctx := expired()
			if err := sub.Close(ctx); !errors.Is(err, rpcbus.ErrUnacknowledged) || !errors.Is(err, ctx.Err()) {
				t.Errorf("Subscription.Close with deliveries unacknowledged and an expired context = %v, "+
					"want an error wrapping rpcbus.ErrUnacknowledged and the context's error", err)
			}
		}},
		{"BusClose", func(t *testing.T, b rpcbus.Bus, _ rpcbus.Subscription) {
			if err := b.Close(); err != nil {
				t.Errorf("Bus.Close with a subscription holding deliveries: %v", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pub, first, next := s.bus(t), s.bus(t), s.bus(t)
			topic, group := name(t, "topic"), name(t, "group")
			opts := rpcbus.SubscribeOptions{Topics: []string{topic}, Group: group}
			var held recorder
			sub := subscribe(t, first, opts, held.hold)
			want := values("m", 10)
			for i, v := range want {
				// Distinct keys, to reach every partition.
				publish(t, pub, topic, &rpcbus.Message{Key: []byte(strconv.Itoa(i)), Value: []byte(v)})
			}
			waitFor(t, waitLimit, "the first member to hold every message", held.atLeast(len(want)))

			tc.leave(t, first, sub)
			for _, d := range held.takeHeld() {
				d.Ack() // too late: must not count, nor fail
			}

			var got recorder
			subscribe(t, next, opts, got.ack)
			limit := waitLimit + s.f.RedeliveryTimeout
			waitFor(t, limit, "redelivery to the next member", got.atLeast(len(want)))
			checkExactlyOnce(t, "the next member", counts(&got), want)
		})
	}
}

// testRedeliveryToMemberPresent: of two members of a group, the first
// stops acknowledging, then closes with an expired context; the other
// receives what the first held. Until then both acknowledge everything
// until both have received some, so that the group has settled (a Kafka
// group has finished assigning partitions) before the first holds any.
func testRedeliveryToMemberPresent(t *testing.T, s *suite) {
	if s.f.NoWorkSpreading {
		t.Skip("Features.NoWorkSpreading: the first member may never get work while the other is in the group")
	}
	pub, first, other := s.bus(t), s.bus(t), s.bus(t)
	topic, group := name(t, "topic"), name(t, "group")
	opts := rpcbus.SubscribeOptions{Topics: []string{topic}, Group: group}
	var (
		holding     atomic.Bool
		acked, held recorder // by the first member
		otherGot    recorder
	)
	sub := subscribe(t, first, opts, func(d *rpcbus.Delivery) {
		if holding.Load() {
			held.hold(d)
		} else {
			acked.ack(d)
		}
	})
	subscribe(t, other, opts, otherGot.ack)
	received := func() int { return acked.len() + held.len() + otherGot.len() }
	sent := publishUntil(t, pub, topic, "settle", received, func() error {
		if acked.len() == 0 || otherGot.len() == 0 {
			return fmt.Errorf("the members received %d and %d", acked.len(), otherGot.len())
		}
		return nil
	})
	holding.Store(true)
	sent = append(sent, publishUntil(t, pub, topic, "held", received, func() error {
		if held.len() == 0 {
			return errors.New("the first member holds nothing yet")
		}
		return nil
	})...)

	ctx := expired()
	if err := sub.Close(ctx); !errors.Is(err, rpcbus.ErrUnacknowledged) || !errors.Is(err, ctx.Err()) {
		t.Errorf("Subscription.Close with %d deliveries unacknowledged and an expired context = %v, "+
			"want an error wrapping rpcbus.ErrUnacknowledged and the context's error", held.len(), err)
	}
	for _, d := range held.takeHeld() {
		d.Ack() // too late: must not count, nor fail
	}
	waitFor(t, waitLimit+s.f.RedeliveryTimeout, "redelivery to the other member", func() error {
		c := counts(&otherGot)
		for _, v := range held.values() {
			if c[v] == 0 {
				return fmt.Errorf("%s, held by the first member, not redelivered (of %d held)", v, held.len())
			}
		}
		return nil
	})
	// What the first member acknowledged stays with it; everything else,
	// what it held included, went to the other member once.
	checkExactlyOnce(t, "the group", counts(&acked, &otherGot), sent)
	t.Logf("%d messages: the first member acknowledged %d and held %d, the other received %d",
		len(sent), acked.len(), held.len(), otherGot.len())
}

// testNoRedeliveryAfterAck: what a member acknowledged before a clean
// Close is not delivered again to the group's next member.
func testNoRedeliveryAfterAck(t *testing.T, s *suite) {
	pub, first, next := s.bus(t), s.bus(t), s.bus(t)
	topic, group := name(t, "topic"), name(t, "group")
	opts := rpcbus.SubscribeOptions{Topics: []string{topic}, Group: group}
	// One key: were the acknowledged messages delivered again, on a bus
	// that keeps per-key order they would come before the marker.
	key := []byte("k")
	var acked recorder
	sub := subscribe(t, first, opts, acked.ack)
	old := values("old", 10)
	publishValues(t, pub, topic, key, old)
	waitFor(t, waitLimit, "the first member to receive every message", acked.atLeast(len(old)))
	if err := sub.Close(limited(t)); err != nil {
		t.Fatalf("Subscription.Close with every delivery acknowledged: %v", err)
	}

	var got recorder
	subscribe(t, next, opts, got.ack)
	publish(t, pub, topic, &rpcbus.Message{Key: key, Value: []byte("marker")})
	waitFor(t, waitLimit, "the marker", func() error {
		if !slices.Contains(got.values(), "marker") {
			return fmt.Errorf("received %q, not the marker", got.values())
		}
		return nil
	})
	checkExactlyOnce(t, "the next member", counts(&got), []string{"marker"})
}

// testInboxOnlyAddressed: a message published to an inbox's address
// reaches that inbox only, never another client's.
func testInboxOnlyAddressed(t *testing.T, s *suite) {
	pub, busA, busB := s.bus(t), s.bus(t), s.bus(t)
	var a, b recorder
	ibA := openInbox(t, inboxer(t, busA), name(t, "client-a"), a.inbox)
	ibB := openInbox(t, inboxer(t, busB), name(t, "client-b"), b.inbox)
	if ibA.Address() == ibB.Address() {
		t.Fatalf("two inboxes with different names have one address %q", ibA.Address())
	}
	wantA, wantB := values("a", 20), values("b", 20)
	for i := range wantA {
		publish(t, pub, ibA.Address(), &rpcbus.Message{Value: []byte(wantA[i])})
		publish(t, pub, ibB.Address(), &rpcbus.Message{Value: []byte(wantB[i])})
	}
	waitFor(t, waitLimit, "inbox a's messages", a.atLeast(len(wantA)))
	waitFor(t, waitLimit, "inbox b's messages", b.atLeast(len(wantB)))
	checkExactlyOnce(t, "inbox a", counts(&a), wantA)
	checkExactlyOnce(t, "inbox b", counts(&b), wantB)
	for _, m := range a.messages() {
		if m.Topic != ibA.Address() {
			t.Errorf("inbox message Topic = %q, want the address %q", m.Topic, ibA.Address())
			break
		}
	}
}

// testInboxOwner: a bus that says whose an inbox address is (InboxOf)
// says it of every address its Inbox returns, and of no address of another
// name, a name that extends it, or one it extends.
func testInboxOwner(t *testing.T, s *suite) {
	b := s.bus(t)
	owner, ok := b.(rpcbus.InboxOwner)
	if !ok {
		t.Skip("the bus does not implement rpcbus.InboxOwner")
	}
	var r recorder
	base := name(t, "owner")
	ib := openInbox(t, inboxer(t, b), base, r.inbox)
	ibDot := openInbox(t, inboxer(t, b), base+".x", r.inbox)
	addr := ib.Address()
	for _, tc := range []struct {
		addr, name string
		want       bool
	}{
		{addr, base, true},
		{ibDot.Address(), base + ".x", true},
		{addr, base + "2", false},
		{addr, base[:len(base)-1], false},
		{ibDot.Address(), base, false},
		{addr, base + ".x", false},
		{addr + "x", base, false},
		{base + ".x", base, false},
		{"", base, false},
	} {
		if got := owner.InboxOf(tc.addr, tc.name); got != tc.want {
			t.Errorf("InboxOf(%q, %q) = %v, want %v", tc.addr, tc.name, got, tc.want)
		}
	}
}

// testInboxGetsEverything: every message published to an inbox's address
// after Inbox returned reaches its handler, with key, value and headers
// intact: a reply published the moment the request is read is not lost.
func testInboxGetsEverything(t *testing.T, s *suite) {
	pub, client := s.bus(t), s.bus(t)
	var got recorder
	ib := openInbox(t, inboxer(t, client), name(t, "client"), got.inbox)
	want := values("reply", 100)
	for i, v := range want {
		publish(t, pub, ib.Address(), &rpcbus.Message{
			Key:     []byte("k" + strconv.Itoa(i)),
			Value:   []byte(v),
			Headers: map[string]string{"vrpc-test": v},
		})
	}
	waitFor(t, waitLimit, "every reply", got.atLeast(len(want)))
	checkExactlyOnce(t, "the inbox", counts(&got), want)
	for _, m := range got.messages() {
		v := string(m.Value)
		if i := strings.TrimPrefix(v, "reply-"); string(m.Key) != "k"+i || m.Headers["vrpc-test"] != v {
			t.Errorf("reply %q arrived with key %q and headers %q", v, m.Key, m.Headers)
			break
		}
	}
}

// testPayload: payloads of 1 B, 64 KiB and 1 MiB arrive intact at a
// subscriber and at an inbox.
func testPayload(t *testing.T, s *suite) {
	for _, size := range []struct {
		name string
		n    int
	}{{"1B", 1}, {"64KiB", 64 << 10}, {"1MiB", 1 << 20}} {
		t.Run(size.name, func(t *testing.T) {
			t.Parallel()
			if s.f.MaxPayload > 0 && size.n > s.f.MaxPayload {
				t.Skipf("Features.MaxPayload: the bus carries at most %d bytes", s.f.MaxPayload)
			}
			// Random bytes, so that truncation, reordering or a shared
			// buffer overwritten would show.
			value := make([]byte, size.n)
			rng := rand.New(rand.NewPCG(uint64(size.n), 1))
			for i := range value {
				value[i] = byte(rng.Uint32())
			}
			key := []byte("k")
			check := func(where string, m rpcbus.Message) {
				switch {
				case !bytes.Equal(m.Key, key):
					t.Errorf("%s received key %q, want %q", where, m.Key, key)
				case len(m.Value) != len(value):
					t.Errorf("%s received a value of %d bytes, want %d", where, len(m.Value), len(value))
				case !bytes.Equal(m.Value, value):
					i := 0
					for m.Value[i] == value[i] {
						i++
					}
					t.Errorf("%s received a value of %d bytes that differs from the one sent at byte %d", where, len(m.Value), i)
				}
			}

			pub, sub := s.bus(t), s.bus(t)
			topic := name(t, "topic")
			var got recorder
			subscribe(t, sub, rpcbus.SubscribeOptions{Topics: []string{topic}, Group: name(t, "group")}, got.ack)
			publish(t, pub, topic, &rpcbus.Message{Key: key, Value: value})
			waitFor(t, waitLimit, "the delivery", got.atLeast(1))
			check("the subscriber", got.messages()[0])

			if _, ok := sub.(rpcbus.Inboxer); !ok {
				t.Logf("%T does not implement rpcbus.Inboxer: inbox not tested", sub)
				return
			}
			var replies recorder
			ib := openInbox(t, inboxer(t, sub), name(t, "client"), replies.inbox)
			publish(t, pub, ib.Address(), &rpcbus.Message{Key: key, Value: value})
			waitFor(t, waitLimit, "the reply", replies.atLeast(1))
			check("the inbox", replies.messages()[0])
		})
	}
}

// testManyPublishers: 10,000 messages from 16 concurrent publishers reach a
// group of two members, none lost and none twice. Nobody closes while it
// runs, so no redelivery is allowed.
func testManyPublishers(t *testing.T, s *suite) {
	const publishers, perPublisher = 16, 625
	pub := s.bus(t)
	topic, group := name(t, "topic"), name(t, "group")
	var a, b recorder
	subscribe(t, s.bus(t), rpcbus.SubscribeOptions{Topics: []string{topic}, Group: group}, a.ack)
	subscribe(t, s.bus(t), rpcbus.SubscribeOptions{Topics: []string{topic}, Group: group}, b.ack)

	var (
		want []string
		wg   sync.WaitGroup
		errs = make(chan error, publishers)
		ctx  = limited(t)
	)
	for p := range publishers {
		vs := values(fmt.Sprintf("p%d", p), perPublisher)
		want = append(want, vs...)
		wg.Go(func() {
			for _, v := range vs {
				if err := pub.Publish(ctx, topic, &rpcbus.Message{Value: []byte(v)}); err != nil {
					errs <- fmt.Errorf("Publish of %s: %w", v, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	waitFor(t, waitLimit, "every message", func() error {
		if n := a.len() + b.len(); n < len(want) {
			return fmt.Errorf("%d of %d messages received", n, len(want))
		}
		return nil
	})
	checkExactlyOnce(t, "the group", counts(&a, &b), want)
	t.Logf("the members received %d and %d messages", a.len(), b.len())
}

// testMaxInFlight: with MaxInFlight n and nothing acknowledged, a consumer
// holds exactly n deliveries; each acknowledgement makes room for one more.
// The handler checks the bound at every delivery, so no check waits for
// something not to happen.
func testMaxInFlight(t *testing.T, s *suite) {
	const maxInFlight, total = 5, 23
	pub, sub := s.bus(t), s.bus(t)
	topic := name(t, "topic")
	var (
		mu        sync.Mutex
		delivered []*rpcbus.Delivery
		acked     int // counted before Ack is called
		over      int // the most outstanding deliveries seen beyond the bound
	)
	outstanding := func() (int, int) {
		mu.Lock()
		defer mu.Unlock()
		return len(delivered) - acked, len(delivered)
	}
	subscribe(t, sub, rpcbus.SubscribeOptions{Topics: []string{topic}, Group: name(t, "group"), MaxInFlight: maxInFlight},
		func(d *rpcbus.Delivery) {
			mu.Lock()
			delivered = append(delivered, d)
			over = max(over, len(delivered)-acked-maxInFlight)
			mu.Unlock()
		})
	want := values("m", total)
	publishValues(t, pub, topic, nil, want)

	for {
		waitFor(t, waitLimit, fmt.Sprintf("%d outstanding deliveries", maxInFlight), func() error {
			if out, n := outstanding(); out != maxInFlight && n < total {
				return fmt.Errorf("%d outstanding, %d delivered of %d", out, n, total)
			}
			return nil
		})
		if _, n := outstanding(); n == total {
			break
		}
		// Make room for two, oldest first.
		mu.Lock()
		ds := delivered[acked : acked+2]
		acked += 2
		mu.Unlock()
		for _, d := range ds {
			d.Ack()
		}
	}
	mu.Lock()
	rest := delivered[acked:]
	acked = len(delivered)
	got := map[string]int{}
	for _, d := range delivered {
		got[string(d.Value)]++
	}
	worst := over
	mu.Unlock()
	for _, d := range rest {
		d.Ack()
	}
	if worst > 0 {
		t.Errorf("a consumer with MaxInFlight %d held %d unacknowledged deliveries", maxInFlight, maxInFlight+worst)
	}
	checkExactlyOnce(t, "the consumer", got, want)
}

// testUnknownTopic: Publish to a topic that does not exist fails with
// rpcbus.ErrUnknownTopic, and once the topic exists it succeeds.
func testUnknownTopic(t *testing.T, s *suite) {
	if s.f.UnknownTopicNotDetected {
		t.Skip("Features.UnknownTopicNotDetected: the bus cannot tell a topic does not exist")
	}
	b := s.bus(t)
	topic := name(t, "missing")
	err := b.Publish(limited(t), topic, &rpcbus.Message{Value: []byte("x")})
	if !errors.Is(err, rpcbus.ErrUnknownTopic) {
		t.Fatalf("Publish to a missing topic = %v, want an error wrapping rpcbus.ErrUnknownTopic", err)
	}
	if !strings.Contains(err.Error(), topic) {
		t.Errorf("error %q does not name the topic %q", err, topic)
	}
	// Not remembered as missing.
	var got recorder
	subscribe(t, s.bus(t), rpcbus.SubscribeOptions{Topics: []string{topic}, Group: name(t, "group")}, got.ack)
	publish(t, b, topic, &rpcbus.Message{Value: []byte("x")})
	waitFor(t, waitLimit, "the delivery", got.atLeast(1))
}

// testCloseStopsConsuming: once Subscription.Close has returned, its
// handler is never called again, while publishing goes on and another
// group keeps receiving. A second Close returns rpcbus.ErrClosed.
func testCloseStopsConsuming(t *testing.T, s *suite) {
	pub := s.bus(t)
	topic := name(t, "topic")
	var (
		closed   atomic.Bool
		late     atomic.Int64 // handler calls after Close returned
		received atomic.Int64
	)
	sub := subscribe(t, s.bus(t), rpcbus.SubscribeOptions{Topics: []string{topic}, Group: name(t, "group")},
		func(d *rpcbus.Delivery) {
			if closed.Load() {
				late.Add(1)
			}
			received.Add(1)
			d.Ack()
		})
	// Another group sees everything published: once it has the last
	// message, the closed subscription had the same chance to receive it.
	var witness recorder
	subscribe(t, s.bus(t), rpcbus.SubscribeOptions{Topics: []string{topic}, Group: name(t, "witness")}, witness.ack)

	var (
		sent atomic.Int64
		stop = make(chan struct{})
		done = make(chan error, 1)
		ctx  = limited(t)
	)
	go func() { // publishes all along, Close included
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if err := pub.Publish(ctx, topic, &rpcbus.Message{Value: []byte("m-" + strconv.Itoa(i))}); err != nil {
				done <- err
				return
			}
			sent.Add(1)
		}
	}()
	waitFor(t, waitLimit, "deliveries before Close", func() error {
		if n := received.Load(); n < 20 {
			return fmt.Errorf("%d received", n)
		}
		return nil
	})
	if err := sub.Close(limited(t)); err != nil {
		t.Errorf("Subscription.Close: %v", err)
	}
	closed.Store(true)
	// Go on publishing until the witness has seen 20 messages more.
	after := sent.Load() + 20
	waitFor(t, waitLimit, "20 more messages to be published", func() error {
		if n := sent.Load(); n < after {
			return fmt.Errorf("%d of %d published", n, after)
		}
		return nil
	})
	close(stop)
	if err := <-done; err != nil {
		t.Fatalf("publishing: %v", err)
	}
	total := int(sent.Load())
	waitFor(t, waitLimit, "the witness group to receive everything", witness.atLeast(total))
	if n := late.Load(); n > 0 {
		t.Errorf("the handler was called %d times after Subscription.Close returned", n)
	}
	if err := sub.Close(limited(t)); !errors.Is(err, rpcbus.ErrClosed) {
		t.Errorf("second Subscription.Close = %v, want an error wrapping rpcbus.ErrClosed", err)
	}
}

// testInboxCloseStopsDelivering: once Inbox.Close has returned, the
// inbox's handler is never called again. A second Close returns
// rpcbus.ErrClosed.
func testInboxCloseStopsDelivering(t *testing.T, s *suite) {
	pub, client := s.bus(t), s.bus(t)
	inboxes := inboxer(t, client)
	var (
		closed atomic.Bool
		late   atomic.Int64
		got    recorder
	)
	ib := openInbox(t, inboxes, name(t, "closing"), func(m *rpcbus.Message) {
		if closed.Load() {
			late.Add(1)
		}
		got.inbox(m)
	})
	var witness recorder
	wib := openInbox(t, inboxes, name(t, "witness"), witness.inbox)

	publishValues(t, pub, ib.Address(), nil, values("before", 10))
	waitFor(t, waitLimit, "messages before Close", got.atLeast(10))
	if err := ib.Close(); err != nil {
		t.Errorf("Inbox.Close: %v", err)
	}
	closed.Store(true)
	for _, v := range values("after", 10) {
		// The address may be gone: only the handler matters here.
		_ = pub.Publish(limited(t), ib.Address(), &rpcbus.Message{Value: []byte(v)})
	}
	publishValues(t, pub, wib.Address(), nil, values("witness", 10))
	waitFor(t, waitLimit, "the witness inbox", witness.atLeast(10))
	if n := late.Load(); n > 0 {
		t.Errorf("the inbox handler was called %d times after Inbox.Close returned", n)
	}
	if err := ib.Close(); !errors.Is(err, rpcbus.ErrClosed) {
		t.Errorf("second Inbox.Close = %v, want an error wrapping rpcbus.ErrClosed", err)
	}
}

// testClosedBus: every method of a closed bus fails with an error wrapping
// rpcbus.ErrClosed, and what was left open on it can still be closed.
func testClosedBus(t *testing.T, s *suite) {
	b := s.bus(t)
	topic, group := name(t, "topic"), name(t, "group")
	opts := rpcbus.SubscribeOptions{Topics: []string{topic}, Group: group}
	var got recorder
	sub := subscribe(t, b, opts, got.ack)
	var ib rpcbus.Inbox
	inboxes, hasInbox := b.(rpcbus.Inboxer)
	if hasInbox {
		ib = openInbox(t, inboxes, name(t, "client"), func(*rpcbus.Message) {})
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Bus.Close: %v", err)
	}

	ctx := limited(t)
	check := func(method string, err error) {
		t.Helper()
		if !errors.Is(err, rpcbus.ErrClosed) {
			t.Errorf("%s on a closed bus = %v, want an error wrapping rpcbus.ErrClosed", method, err)
		}
	}
	check("Publish", b.Publish(ctx, topic, &rpcbus.Message{Value: []byte("x")}))
	_, err := b.Subscribe(ctx, opts, got.ack)
	check("Subscribe", err)
	if hasInbox {
		_, err := inboxes.Inbox(ctx, name(t, "other"), func(*rpcbus.Message) {})
		check("Inbox", err)
	}
	if tc, ok := b.(rpcbus.TopicCreator); ok {
		check("CreateTopics", tc.CreateTopics(ctx, name(t, "other")))
	}
	// The bus asked for them to be closed first; closing them late must
	// still work, and not hang.
	if err := sub.Close(ctx); err != nil && !errors.Is(err, rpcbus.ErrClosed) {
		t.Errorf("Subscription.Close after Bus.Close = %v, want nil or rpcbus.ErrClosed", err)
	}
	if hasInbox {
		if err := ib.Close(); err != nil && !errors.Is(err, rpcbus.ErrClosed) {
			t.Errorf("Inbox.Close after Bus.Close = %v, want nil or rpcbus.ErrClosed", err)
		}
	}
	// A second Close may be a no-op (as io.Closer implementations often
	// are) or report ErrClosed; anything else is an error.
	if err := b.Close(); err != nil && !errors.Is(err, rpcbus.ErrClosed) {
		t.Errorf("second Bus.Close = %v, want nil or rpcbus.ErrClosed", err)
	}
}
