package bustest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/nextpkg/vrpc/rpcbus"
)

// testPingAndAddresses: every bus says whether its servers answer
// (rpcbus.Pinger) and which they are (rpcbus.Addresser); once closed, Ping
// says so.
func testPingAndAddresses(t *testing.T, s *suite) {
	b := s.bus(t)
	p, ok := b.(rpcbus.Pinger)
	if !ok {
		t.Fatalf("%T does not implement rpcbus.Pinger", b)
	}
	if err := p.Ping(limited(t)); err != nil {
		t.Errorf("Ping of a working bus: %v", err)
	}
	a, ok := b.(rpcbus.Addresser)
	if !ok {
		t.Fatalf("%T does not implement rpcbus.Addresser", b)
	}
	addrs := a.Addresses()
	if len(addrs) == 0 || slices.Contains(addrs, "") {
		t.Errorf("Addresses() = %q, want the bus's servers", addrs)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Bus.Close: %v", err)
	}
	if err := p.Ping(limited(t)); !errors.Is(err, rpcbus.ErrClosed) {
		t.Errorf("Ping of a closed bus = %v, want rpcbus.ErrClosed", err)
	}
}

// testStatus: a subscription reports its group and topics
// (rpcbus.StatusReporter) and, unless Features.NoLag, the group's lag:
// the messages published and not yet acknowledged, then zero once every
// one has been acknowledged.
func testStatus(t *testing.T, s *suite) {
	pub, b := s.bus(t), s.bus(t)
	topic, group := name(t, "topic"), name(t, "group")
	var (
		holding atomic.Bool
		got     recorder
	)
	holding.Store(true)
	sub := subscribe(t, b, rpcbus.SubscribeOptions{Topics: []string{topic}, Group: group, MaxInFlight: 1},
		func(d *rpcbus.Delivery) {
			if holding.Load() {
				got.hold(d)
			} else {
				got.ack(d)
			}
		})
	r, ok := sub.(rpcbus.StatusReporter)
	if !ok {
		t.Fatalf("the subscriptions of %T do not implement rpcbus.StatusReporter", b)
	}
	want := values("m", 8)
	publishValues(t, pub, topic, nil, want)
	waitFor(t, waitLimit, "the first delivery", got.atLeast(1))

	st, err := r.Status(limited(t))
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if st.Group != group {
		t.Errorf("Status().Group = %q, want %q", st.Group, group)
	}
	if !slices.ContainsFunc(st.Partitions, func(p rpcbus.PartitionStatus) bool { return p.Topic == topic }) {
		t.Errorf("Status().Partitions = %+v, want the topic %q", st.Partitions, topic)
	}
	if s.f.NoLag {
		t.Log("Features.NoLag: the lag checks are skipped")
	} else {
		// At most MaxInFlight (one) delivery is handed out; buses whose
		// lag counts only the messages waiting may leave it out.
		waitFor(t, waitLimit, "a lag of the messages not yet acknowledged", lagBetween(r, int64(len(want)-1), math.MaxInt64))
	}

	holding.Store(false)
	for _, d := range got.takeHeld() {
		d.Ack()
	}
	waitFor(t, waitLimit, "every message", got.atLeast(len(want)))
	if !s.f.NoLag {
		waitFor(t, waitLimit, "no lag once every message is acknowledged", lagBetween(r, 0, 0))
	}
}

// lagBetween is a waitFor condition: the subscription's partitions all
// know their lag, and it adds up to lo to hi.
func lagBetween(r rpcbus.StatusReporter, lo, hi int64) func() error {
	return func() error {
		lag, err := totalLag(r)
		if err == nil && (lag < lo || lag > hi) {
			err = fmt.Errorf("lag %d, want %d to %d", lag, lo, hi)
		}
		return err
	}
}

func totalLag(r rpcbus.StatusReporter) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	st, err := r.Status(ctx)
	if err != nil {
		return 0, fmt.Errorf("Status: %w", err)
	}
	var lag int64
	for _, p := range st.Partitions {
		if p.Lag < 0 {
			return 0, fmt.Errorf("partition %s/%d: lag unknown", p.Topic, p.Partition)
		}
		lag += p.Lag
	}
	return lag, nil
}

// testRemove: on a bus that keeps state on its servers (rpcbus.Remover),
// Remove drops what a group left there: a message kept for the group after
// its last member closed is gone, and the group, joining again, gets only
// what is published afterwards.
func testRemove(t *testing.T, s *suite) {
	pub, b := s.bus(t), s.bus(t)
	rm, ok := b.(rpcbus.Remover)
	if !ok {
		t.Skipf("%T does not implement rpcbus.Remover", b)
	}
	topic, group := name(t, "topic"), name(t, "group")
	opts := rpcbus.SubscribeOptions{Topics: []string{topic}, Group: group}
	var first recorder
	sub := subscribe(t, b, opts, first.ack)
	publish(t, pub, topic, &rpcbus.Message{Value: []byte("before")})
	waitFor(t, waitLimit, "the first member's delivery", first.atLeast(1))
	if err := sub.Close(limited(t)); err != nil {
		t.Fatalf("Subscription.Close: %v", err)
	}
	publish(t, pub, topic, &rpcbus.Message{Value: []byte("left")}) // kept for the group

	if err := rm.Remove(limited(t), rpcbus.Leftovers{Topics: []string{topic}, Groups: []string{group}}); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if err := rm.Remove(limited(t), rpcbus.Leftovers{Topics: []string{topic}, Groups: []string{group}}); err != nil {
		t.Errorf("Remove of what is gone already: %v", err)
	}

	var again recorder
	subscribe(t, b, opts, again.ack)
	publish(t, pub, topic, &rpcbus.Message{Value: []byte("after")})
	waitFor(t, waitLimit, "the message published after Remove", func() error {
		if !slices.Contains(again.values(), "after") {
			return fmt.Errorf("received %q", again.values())
		}
		return nil
	})
	if slices.Contains(again.values(), "left") {
		t.Errorf("the group received %q, kept for it before Remove", again.values())
	}
}

// testBacklog: every bus counts what a group has yet to consume of a
// topic (rpcbus.BacklogReporter) while no member of it runs: exactly the
// messages published since its last member left, none of them
// unacknowledged; and none once a member has taken and acknowledged them
// all. A group that has never consumed the topic is unknown, not empty.
// Under Features.NoLag the bus must say it cannot tell (Messages -1 with
// a reason) instead of giving a number.
func testBacklog(t *testing.T, s *suite) {
	pub, b := s.bus(t), s.bus(t)
	br, ok := b.(rpcbus.BacklogReporter)
	if !ok {
		t.Fatalf("%T does not implement rpcbus.BacklogReporter", b)
	}
	topic, group := name(t, "topic"), name(t, "group")
	opts := rpcbus.SubscribeOptions{Topics: []string{topic}, Group: group}
	// The group joins, takes a message and leaves: it has a position.
	var first recorder
	sub := subscribe(t, b, opts, first.ack)
	publish(t, pub, topic, &rpcbus.Message{Value: []byte("joined")})
	waitFor(t, waitLimit, "the first member's delivery", first.atLeast(1))
	if err := sub.Close(limited(t)); err != nil {
		t.Fatalf("Subscription.Close: %v", err)
	}
	const n = 5
	publishValues(t, pub, topic, nil, values("waiting", n))

	never := name(t, "never")
	got, err := br.Backlog(limited(t), never, []string{topic})
	switch {
	case err != nil:
		t.Errorf("Backlog of a group that never consumed: %v", err)
	case len(got) != 1 || got[0].Topic != topic || got[0].Group != never:
		t.Errorf("Backlog(%q, [%q]) = %+v, want one entry for that topic and group", never, topic, got)
	case got[0].Messages != -1 || got[0].Unknown == "":
		t.Errorf("Backlog of a group that never consumed = %+v, want Messages -1 with the reason in Unknown", got[0])
	}

	if s.f.NoLag {
		tb, err := backlogOf(br, group, topic)
		if err != nil {
			t.Fatal(err)
		}
		if tb.Messages != -1 || tb.Unknown == "" {
			t.Errorf("Backlog on a bus that cannot tell (Features.NoLag) = %+v, want Messages -1 with the reason in Unknown", tb)
		}
		t.Log("Features.NoLag: the counts are not checked; the reason given:", tb.Unknown)
		return
	}
	waitFor(t, waitLimit, fmt.Sprintf("a backlog of the %d messages published with no member running", n), func() error {
		tb, err := backlogOf(br, group, topic)
		switch {
		case err != nil:
			return err
		case tb.Messages != n:
			return fmt.Errorf("backlog %+v, want %d messages", tb, n)
		case tb.Unacknowledged > 0:
			return fmt.Errorf("backlog %+v: unacknowledged messages with no member running", tb)
		}
		return nil
	})

	var again recorder
	subscribe(t, b, opts, again.ack)
	waitFor(t, waitLimit, "the waiting messages", again.atLeast(n))
	waitFor(t, waitLimit, "no backlog once every message is acknowledged", func() error {
		tb, err := backlogOf(br, group, topic)
		if err == nil && (tb.Messages != 0 || tb.Unacknowledged > 0) {
			err = fmt.Errorf("backlog %+v, want none", tb)
		}
		return err
	})
}

// backlogOf is the backlog of group on topic alone.
func backlogOf(br rpcbus.BacklogReporter, group, topic string) (rpcbus.TopicBacklog, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	got, err := br.Backlog(ctx, group, []string{topic})
	if err != nil {
		return rpcbus.TopicBacklog{}, fmt.Errorf("Backlog: %w", err)
	}
	if len(got) != 1 || got[0].Topic != topic || got[0].Group != group {
		return rpcbus.TopicBacklog{}, fmt.Errorf("Backlog(%q, [%q]) = %+v, want one entry for that topic and group", group, topic, got)
	}
	return got[0], nil
}
