package kafka_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/kafka"
)

// TestSubscribeGetsEarlierMessages publishes before any member has joined:
// a server that starts late still serves the requests queued for it.
func TestSubscribeGetsEarlierMessages(t *testing.T) {
	t.Parallel()
	b := newBus(t, nil)
	topic := name(t, "requests")
	if err := b.CreateTopics(ctxFor(t, 30*time.Second), topic); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		publish(t, b, topic, &rpcbus.Message{Key: []byte(strconv.Itoa(i)), Value: []byte(strconv.Itoa(i))})
	}
	c := newCollector()
	s := subscribe(t, b, rpcbus.SubscribeOptions{Topics: []string{topic}, Group: name(t, "group")},
		func(d *rpcbus.Delivery) { c.add(d); d.Ack() })
	closeSub(t, s)
	eventually(t, "the 5 earlier messages", func() bool { return c.len() == 5 })
}

// heldDeliveries subscribes a first member that holds every delivery
// without acknowledging it, publishes n messages over all partitions and
// waits until it holds them all.
func heldDeliveries(t *testing.T, b *kafka.Bus, opts rpcbus.SubscribeOptions, n int) (rpcbus.Subscription, *collector) {
	t.Helper()
	held := newCollector()
	s := subscribe(t, b, opts, held.add)
	for i := range n {
		publish(t, b, opts.Topics[0], &rpcbus.Message{Key: []byte(strconv.Itoa(i)), Value: []byte(strconv.Itoa(i))})
	}
	eventually(t, "the first member to hold every message", func() bool { return held.len() == n })
	return s, held
}

// TestRevokeWaitsForAcks has a second member join while the first holds
// unacknowledged deliveries on every partition. The first member's
// revocation waits for them; once they are acknowledged, the second member
// must not see any of them again.
func TestRevokeWaitsForAcks(t *testing.T) {
	t.Parallel()
	b := newBus(t, nil) // revoke_timeout 10s
	opts := rpcbus.SubscribeOptions{Topics: []string{name(t, "requests")}, Group: name(t, "group")}
	s1, held := heldDeliveries(t, b, opts, 40)
	closeSub(t, s1)

	c2 := newCollector()
	joined := make(chan error, 1)
	go func() {
		s2, err := b.Subscribe(ctxFor(t, 30*time.Second), opts, func(d *rpcbus.Delivery) { c2.add(d); d.Ack() })
		if err == nil {
			closeSub(t, s2)
		}
		joined <- err
	}()
	// Give the rebalance time to reach the first member's revocation (if
	// it has not, the test checks less, but still passes only if correct).
	time.Sleep(300 * time.Millisecond)
	for _, d := range held.deliveries() {
		d.Ack()
	}
	if err := <-joined; err != nil {
		t.Fatal(err)
	}
	// The second member got partitions; anything published now reaches
	// one member or the other, and nothing held before comes back.
	for i := 40; i < 80; i++ {
		publish(t, b, opts.Topics[0], &rpcbus.Message{Key: []byte(strconv.Itoa(i)), Value: []byte(strconv.Itoa(i))})
	}
	eventually(t, "the new messages", func() bool { return held.len()+c2.len() >= 80 })
	for v, n := range c2.counts() {
		if i, _ := strconv.Atoi(v); i < 40 || n != 1 {
			t.Errorf("second member got message %s %d times; want only new messages, once", v, n)
		}
	}
	for _, d := range held.deliveries() {
		d.Ack() // the new ones, so that Close need not wait
	}
}

// TestRevokeTimeout has the first member never acknowledge: after
// revoke_timeout the rebalance goes on, the second member gets the
// messages of the partitions it took over again, and the first member's
// late acknowledgements are ignored.
func TestRevokeTimeout(t *testing.T) {
	t.Parallel()
	set := testSettings()
	set["revoke_timeout"] = "100ms"
	b := newBus(t, set)
	opts := rpcbus.SubscribeOptions{Topics: []string{name(t, "requests")}, Group: name(t, "group")}
	s1, held := heldDeliveries(t, b, opts, 40)

	c2 := newCollector()
	s2 := subscribe(t, b, opts, func(d *rpcbus.Delivery) { c2.add(d); d.Ack() })
	closeSub(t, s2)
	eventually(t, "redelivery to the second member", func() bool { return c2.len() > 0 })
	for _, d := range held.deliveries() {
		d.Ack() // late for the revoked partitions: ignored
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s1.Close(ctx); err != nil {
		t.Errorf("Close after acknowledging everything: %v", err)
	}
	// Whatever the second member got was held by the first.
	for v := range c2.counts() {
		if i, _ := strconv.Atoi(v); i >= 40 {
			t.Errorf("unexpected message %s", v)
		}
	}
}

// TestSubscribeCanceled gives up joining when ctx ends, leaving nothing
// running (TestMain checks for goroutines).
func TestSubscribeCanceled(t *testing.T) {
	t.Parallel()
	b := newBus(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := b.Subscribe(ctx, rpcbus.SubscribeOptions{Topics: []string{name(t, "requests")}, Group: name(t, "group")},
		func(*rpcbus.Delivery) {})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Subscribe with a canceled context = %v, want context.Canceled", err)
	}
	for _, opts := range []rpcbus.SubscribeOptions{
		{Group: "g"},
		{Topics: []string{"t"}},
		{Topics: []string{"t"}, Group: "g", MaxInFlight: -1},
	} {
		if _, err := b.Subscribe(ctxFor(t, time.Second), opts, func(*rpcbus.Delivery) {}); err == nil {
			t.Errorf("Subscribe(%+v) succeeded", opts)
		}
	}
}
