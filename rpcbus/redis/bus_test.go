package redis_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/redis"
)

// TestClaimsEntriesOfDeadConsumer: entries a consumer read and never
// acknowledged (it died) reach a member of the group once claim_idle has
// passed, and only then.
func TestClaimsEntriesOfDeadConsumer(t *testing.T) {
	t.Parallel()
	const claimIdle = 500 * time.Millisecond
	b := newBus(t, map[string]any{"claim_idle": claimIdle.String()})
	rc := rawClient(t)
	topic, group := name(t, "topic"), name(t, "group")
	key := runPrefix + topic
	ctx := ctxFor(t, 30*time.Second)
	if err := rc.XGroupCreateMkStream(ctx, key, group, "0").Err(); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		publish(t, b, topic, &rpcbus.Message{Value: fmt.Appendf(nil, "m-%d", i)})
	}
	// A consumer of another process reads them, then dies.
	res, err := rc.XReadGroup(ctx, &goredis.XReadGroupArgs{Group: group, Consumer: "dead", Streams: []string{key, ">"}, Count: 10, Block: -1}).Result()
	if err != nil || len(res) != 1 || len(res[0].Messages) != 5 {
		t.Fatalf("the dead consumer read %v, %v", res, err)
	}
	read := time.Now()

	got := newCollector()
	subscribe(t, b, rpcbus.SubscribeOptions{Topics: []string{topic}, Group: group}, func(d *rpcbus.Delivery) {
		if time.Since(read) < claimIdle {
			t.Errorf("%s claimed %v after the dead consumer read it, before claim_idle", d.Value, time.Since(read))
		}
		got.ack(d)
	})
	eventually(t, "the dead consumer's entries", func() bool { return got.len() == 5 })
	eventually(t, "their acknowledgement", func() bool {
		p, err := rc.XPending(ctx, key, group).Result()
		return err == nil && p.Count == 0
	})
	for i := range 5 {
		if n := got.count(fmt.Sprintf("m-%d", i)); n != 1 {
			t.Errorf("m-%d delivered %d times", i, n)
		}
	}
}

// TestHeldEntriesAreNotClaimed: a member that holds a delivery for longer
// than claim_idle keeps it; another member of the group does not take it
// over.
func TestHeldEntriesAreNotClaimed(t *testing.T) {
	t.Parallel()
	const claimIdle = 300 * time.Millisecond
	set := map[string]any{"claim_idle": claimIdle.String()}
	pub := newBus(t, set)
	topic, group := name(t, "topic"), name(t, "group")
	held := newCollector()
	subscribe(t, newBus(t, set), rpcbus.SubscribeOptions{Topics: []string{topic}, Group: group}, held.add)
	publish(t, pub, topic, &rpcbus.Message{Value: []byte("slow")})
	eventually(t, "the delivery", func() bool { return held.len() == 1 })

	other := newCollector()
	subscribe(t, newBus(t, set), rpcbus.SubscribeOptions{Topics: []string{topic}, Group: group}, other.ack)
	// Ten times claim_idle: the other member looks for idle entries
	// every claim_idle/2.
	time.Sleep(10 * claimIdle)
	if n := other.len(); n != 0 {
		t.Fatalf("the other member took over %d entries held by the first", n)
	}
	held.deliveries()[0].Ack()
}

// TestCloseHandsBack: a subscription closing with deliveries
// unacknowledged leaves them idle, on the orphaned consumer, and deletes
// its own consumer from the group.
func TestCloseHandsBack(t *testing.T) {
	t.Parallel()
	b := newBus(t, nil)
	rc := rawClient(t)
	topic, group := name(t, "topic"), name(t, "group")
	key := runPrefix + topic
	held := newCollector()
	sub := subscribe(t, b, rpcbus.SubscribeOptions{Topics: []string{topic}, Group: group}, held.add)
	for i := range 3 {
		publish(t, b, topic, &rpcbus.Message{Value: fmt.Appendf(nil, "m-%d", i)})
	}
	eventually(t, "the deliveries", func() bool { return held.len() == 3 })
	held.deliveries()[0].Ack()

	expired, cancel := context.WithCancel(context.Background())
	cancel()
	err := sub.Close(expired)
	if !errors.Is(err, rpcbus.ErrUnacknowledged) || !strings.Contains(err.Error(), "2 at close") {
		t.Errorf("Close with 2 deliveries held = %v, want ErrUnacknowledged naming 2", err)
	}
	ctx := ctxFor(t, 10*time.Second)
	pending, err := rc.XPendingExt(ctx, &goredis.XPendingExtArgs{Stream: key, Group: group, Start: "-", End: "+", Count: 10}).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 2 {
		t.Fatalf("%d entries pending after Close, want the 2 unacknowledged: %+v", len(pending), pending)
	}
	for _, p := range pending {
		if p.Consumer != "vrpc:orphaned" || p.Idle < 24*time.Hour {
			t.Errorf("entry %s is pending for %q, idle %v: want the orphaned consumer, idle for ages", p.ID, p.Consumer, p.Idle)
		}
	}
	consumers, err := rc.XInfoConsumers(ctx, key, group).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(consumers) != 1 || consumers[0].Name != "vrpc:orphaned" {
		t.Errorf("consumers after Close: %+v, want only the orphaned one", consumers)
	}
	// Late acknowledgements change nothing.
	for _, d := range held.deliveries() {
		d.Ack()
	}
	if n, err := rc.XPending(ctx, key, group).Result(); err != nil || n.Count != 2 {
		t.Errorf("after late acknowledgements: %+v pending, %v", n, err)
	}
}

// TestPublishLimits: a message larger than max_message_bytes is refused,
// and a stream is trimmed to about max_len entries.
func TestPublishLimits(t *testing.T) {
	t.Parallel()
	b := newBus(t, map[string]any{"max_message_bytes": float64(2048), "max_len": float64(100)})
	topic := name(t, "topic")
	ctx := ctxFor(t, 30*time.Second)
	if err := b.CreateTopics(ctx, topic); err != nil {
		t.Fatal(err)
	}
	err := b.Publish(ctx, topic, &rpcbus.Message{Value: make([]byte, 2000), Headers: map[string]string{"h": strings.Repeat("x", 100)}})
	if !errors.Is(err, rpcbus.ErrMessageTooLarge) || !strings.Contains(err.Error(), "max_message_bytes is 2048") {
		t.Fatalf("Publish of 2102 bytes = %v, want ErrMessageTooLarge naming the limit", err)
	}
	for range 1000 {
		publish(t, b, topic, &rpcbus.Message{Value: make([]byte, 10)})
	}
	n, err := rawClient(t).XLen(ctx, runPrefix+topic).Result()
	if err != nil || n < 100 || n > 300 {
		t.Fatalf("stream length after 1000 messages with max_len 100: %d, %v", n, err)
	}
}

// TestInboxLifetime: an inbox's stream expires unless refreshed, is
// deleted at Close, and Publish to it then fails with ErrUnknownTopic.
func TestInboxLifetime(t *testing.T) {
	t.Parallel()
	b := newBus(t, map[string]any{"inbox_ttl": "10s"})
	rc := rawClient(t)
	ctx := ctxFor(t, 30*time.Second)
	got := make(chan string, 10)
	ib, err := b.Inbox(ctx, name(t, "client"), func(m *rpcbus.Message) { got <- string(m.Value) })
	if err != nil {
		t.Fatal(err)
	}
	ttl, err := rc.PTTL(ctx, runPrefix+ib.Address()).Result()
	if err != nil || ttl <= 0 || ttl > 10*time.Second {
		t.Fatalf("inbox stream TTL %v, %v; want up to 10s", ttl, err)
	}
	publish(t, b, ib.Address(), &rpcbus.Message{Value: []byte("hi")})
	if v := <-got; v != "hi" {
		t.Fatalf("got %q", v)
	}
	if err := ib.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := rc.Exists(ctx, runPrefix+ib.Address()).Result(); err != nil || n != 0 {
		t.Fatalf("inbox stream still exists after Close: %d, %v", n, err)
	}
	if err := b.Publish(ctx, ib.Address(), &rpcbus.Message{Value: []byte("late")}); !errors.Is(err, rpcbus.ErrUnknownTopic) {
		t.Fatalf("Publish to a closed inbox = %v, want ErrUnknownTopic", err)
	}
}

// TestStreamsLostOnTheServer: when the server loses the streams (it
// restarted without persistence, or someone deleted them), subscriptions
// and inboxes create them again and go on.
func TestStreamsLostOnTheServer(t *testing.T) {
	t.Parallel()
	b := newBus(t, map[string]any{"inbox_ttl": "1s", "block": "100ms"})
	rc := rawClient(t)
	ctx := ctxFor(t, 30*time.Second)
	topic := name(t, "topic")
	got := newCollector()
	subscribe(t, b, rpcbus.SubscribeOptions{Topics: []string{topic}, Group: name(t, "group")}, got.ack)
	replies := make(chan string, 100)
	ib, err := b.Inbox(ctx, name(t, "client"), func(m *rpcbus.Message) { replies <- string(m.Value) })
	if err != nil {
		t.Fatal(err)
	}
	defer ib.Close()
	if err := rc.Del(ctx, runPrefix+topic, runPrefix+ib.Address()).Err(); err != nil {
		t.Fatal(err)
	}
	// Publish fails until the stream is back, then reaches the consumer.
	publishEventually := func(topic, v string) {
		t.Helper()
		eventually(t, "publish to "+topic, func() bool {
			err := b.Publish(ctx, topic, &rpcbus.Message{Value: []byte(v)})
			if err != nil && !errors.Is(err, rpcbus.ErrUnknownTopic) {
				t.Fatalf("Publish: %v", err)
			}
			return err == nil
		})
	}
	publishEventually(topic, "after")
	eventually(t, "the delivery", func() bool { return got.count("after") == 1 })
	publishEventually(ib.Address(), "reply")
	if v := <-replies; v != "reply" {
		t.Fatalf("inbox got %q", v)
	}
}

// TestConnectionLoss: while the server cannot be reached, Publish fails
// within its context with an error wrapping ErrUnavailable or the
// context's; once it is back, subscriptions and inboxes go on by
// themselves.
func TestConnectionLoss(t *testing.T) {
	t.Parallel()
	needRedis(t)
	p := startProxy(t, addr)
	b, err := redis.New(rpcbus.Config{Type: "redis", Brokers: []string{p.addr},
		Settings: testSettings(map[string]any{"block": "100ms", "dial_timeout": "500ms"})})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := ctxFor(t, 60*time.Second)
	topic := name(t, "topic")
	got := newCollector()
	sub, err := b.Subscribe(ctx, rpcbus.SubscribeOptions{Topics: []string{topic}, Group: name(t, "group")}, got.ack)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close(ctx)
	replies := make(chan string, 100)
	ib, err := b.Inbox(ctx, name(t, "client"), func(m *rpcbus.Message) { replies <- string(m.Value) })
	if err != nil {
		t.Fatal(err)
	}
	defer ib.Close()
	publish(t, b, topic, &rpcbus.Message{Value: []byte("before")})
	eventually(t, "the first delivery", func() bool { return got.count("before") == 1 })

	p.down()
	for range 3 {
		pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		start := time.Now()
		err := b.Publish(pctx, topic, &rpcbus.Message{Value: []byte("lost")})
		took := time.Since(start)
		cancel()
		if err == nil || !errors.Is(err, rpcbus.ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Publish while the server is down = %v, want ErrUnavailable or DeadlineExceeded", err)
		}
		// Generous: only a hang fails.
		if took > 5*time.Second {
			t.Fatalf("Publish while the server is down took %v with a 300ms context", took)
		}
	}
	time.Sleep(500 * time.Millisecond) // the readers fail and back off
	p.up()

	// Publish may fail once or twice on connections broken by the outage.
	for _, tc := range []struct{ topic, value string }{{topic, "after"}, {ib.Address(), "reply"}} {
		eventually(t, "publish after the outage", func() bool {
			return b.Publish(ctx, tc.topic, &rpcbus.Message{Value: []byte(tc.value)}) == nil
		})
	}
	eventually(t, "a delivery after the outage", func() bool { return got.count("after") == 1 })
	select {
	case v := <-replies:
		if v != "reply" {
			t.Fatalf("inbox got %q", v)
		}
	case <-ctx.Done():
		t.Fatal("no reply after the outage")
	}
}

// TestStartWhileServerDown: Subscribe, Inbox and CreateTopics wait for a
// server that cannot be reached yet, within their context.
func TestStartWhileServerDown(t *testing.T) {
	t.Parallel()
	needRedis(t)
	p := startProxy(t, addr)
	p.down()
	b, err := redis.New(rpcbus.Config{Type: "redis", Brokers: []string{p.addr}, Settings: testSettings(nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := b.CreateTopics(short, name(t, "topic")); !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, rpcbus.ErrUnavailable) {
		t.Fatalf("CreateTopics while the server is down = %v, want DeadlineExceeded and ErrUnavailable", err)
	}

	ctx := ctxFor(t, 30*time.Second)
	errs := make(chan error, 2)
	topic := name(t, "topic")
	got := newCollector()
	go func() {
		sub, err := b.Subscribe(ctx, rpcbus.SubscribeOptions{Topics: []string{topic}, Group: name(t, "group")}, got.ack)
		if err == nil {
			t.Cleanup(func() { _ = sub.Close(ctx) })
		}
		errs <- err
	}()
	go func() {
		ib, err := b.Inbox(ctx, name(t, "client"), func(*rpcbus.Message) {})
		if err == nil {
			t.Cleanup(func() { _ = ib.Close() })
		}
		errs <- err
	}()
	time.Sleep(300 * time.Millisecond)
	p.up()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("started while the server was down: %v", err)
		}
	}
	publish(t, b, topic, &rpcbus.Message{Value: []byte("m")})
	eventually(t, "the delivery", func() bool { return got.len() == 1 })
}

// proxy forwards TCP connections to a Redis server. It can cut them all
// and refuse new ones for a while, as a server that is down; or freeze
// them, as a network that drops every packet.
type proxy struct {
	t      *testing.T
	addr   string
	target string

	mu    sync.Mutex
	ln    net.Listener
	conns []net.Conn
	gate  chan struct{} // closed unless frozen
	wg    sync.WaitGroup
}

func startProxy(t *testing.T, target string) *proxy {
	p := &proxy{t: t, target: target, gate: make(chan struct{})}
	close(p.gate)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(func() {
		p.thaw()
		p.down()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			if p.ln != ln { // down ran since Accept: it must not outlive it
				p.mu.Unlock()
				c.Close()
				s.Close()
				return
			}
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			p.wg.Go(func() { p.pipe(s, c) })
			p.wg.Go(func() { p.pipe(c, s) })
		}
	})
}

// pipe copies src to dst, holding what it read while the proxy is frozen.
func (p *proxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			gate := p.gate
			p.mu.Unlock()
			<-gate
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// down closes the listener and every connection.
func (p *proxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = slices.Delete(p.conns, 0, len(p.conns))
}

// up listens again at the same address.
func (p *proxy) up() {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.serve(ln)
}

// freeze stops forwarding, leaving connections open; thaw goes on.
func (p *proxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.gate:
		p.gate = make(chan struct{})
	default:
	}
}

func (p *proxy) thaw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.gate:
	default:
		close(p.gate)
	}
}

// TestCloseWhileServerHangs: closing subscriptions, inboxes and the bus
// does not wait for a server that does not answer beyond a few seconds,
// even with blocking reads of a minute.
func TestCloseWhileServerHangs(t *testing.T) {
	t.Parallel()
	needRedis(t)
	p := startProxy(t, addr)
	b, err := redis.New(rpcbus.Config{Type: "redis", Brokers: []string{p.addr},
		Settings: testSettings(map[string]any{"block": "1m"})})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t, 30*time.Second)
	topic := name(t, "topic")
	held := newCollector()
	sub, err := b.Subscribe(ctx, rpcbus.SubscribeOptions{Topics: []string{topic}, Group: name(t, "group")}, held.add)
	if err != nil {
		t.Fatal(err)
	}
	ib, err := b.Inbox(ctx, name(t, "client"), func(*rpcbus.Message) {})
	if err != nil {
		t.Fatal(err)
	}
	publish(t, b, topic, &rpcbus.Message{Value: []byte("m")})
	eventually(t, "the delivery", func() bool { return held.len() == 1 })
	time.Sleep(50 * time.Millisecond) // the loops block again

	p.freeze()
	start := time.Now()
	if err := ib.Close(); err != nil {
		t.Errorf("Inbox.Close: %v", err)
	}
	expired, cancel := context.WithCancel(ctx)
	cancel()
	err = sub.Close(expired)
	t.Logf("Subscription.Close: %v", err)
	if err := b.Close(); err != nil {
		t.Errorf("Bus.Close: %v", err)
	}
	// Generous: only a wait for the blocking reads (a minute) fails.
	if took := time.Since(start); took > 30*time.Second {
		t.Fatalf("closing took %v while the server did not answer", took)
	} else {
		t.Logf("closing took %v while the server did not answer", took)
	}
}

// TestSeveralTopics: one subscription consumes several topics, each
// message once, never holding more than MaxInFlight, even when that is
// fewer than its topics.
func TestSeveralTopics(t *testing.T) {
	t.Parallel()
	for _, maxInFlight := range []int{1, 2, 100} {
		t.Run(fmt.Sprint(maxInFlight), func(t *testing.T) {
			t.Parallel()
			b := newBus(t, nil)
			topics := []string{name(t, "a"), name(t, "b"), name(t, "c")}
			var (
				mu          sync.Mutex
				outstanding int
				worst       int
			)
			got := newCollector()
			acks := make(chan *rpcbus.Delivery, 100)
			subscribe(t, b, rpcbus.SubscribeOptions{Topics: topics, Group: name(t, "group"), MaxInFlight: maxInFlight},
				func(d *rpcbus.Delivery) {
					mu.Lock()
					outstanding++
					worst = max(worst, outstanding)
					mu.Unlock()
					got.add(d)
					acks <- d
				})
			stop, done := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(done)
				for {
					select {
					case d := <-acks:
						time.Sleep(time.Millisecond) // let deliveries pile up
						mu.Lock()
						outstanding--
						mu.Unlock()
						d.Ack()
					case <-stop:
						return
					}
				}
			}()
			var want []string
			for i := range 10 {
				for _, topic := range topics {
					v := fmt.Sprintf("%s-%d", topic, i)
					want = append(want, v)
					publish(t, b, topic, &rpcbus.Message{Value: []byte(v)})
				}
			}
			eventually(t, "every message", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return got.len() >= len(want) && outstanding == 0
			})
			close(stop)
			<-done
			for _, v := range want {
				if n := got.count(v); n != 1 {
					t.Errorf("%s delivered %d times", v, n)
				}
			}
			if got.len() != len(want) {
				t.Errorf("%d deliveries, want %d", got.len(), len(want))
			}
			if worst > maxInFlight {
				t.Errorf("held %d deliveries at once, MaxInFlight is %d", worst, maxInFlight)
			}
			for _, d := range got.deliveries() {
				if !slices.Contains(topics, d.Topic) || !strings.HasPrefix(string(d.Value), d.Topic) {
					t.Errorf("delivery %q has Topic %q", d.Value, d.Topic)
				}
			}
		})
	}
}

// TestStatus: a subscription reports each topic's entries, and the group's
// lag: entries not delivered plus those not acknowledged.
func TestStatus(t *testing.T) {
	t.Parallel()
	b := newBus(t, nil)
	topics := []string{name(t, "b"), name(t, "a")}
	held := newCollector()
	sub := subscribe(t, b, rpcbus.SubscribeOptions{Topics: topics, Group: name(t, "group"), MaxInFlight: 2}, held.add)
	for i := range 5 {
		publish(t, b, topics[0], &rpcbus.Message{Value: fmt.Appendf(nil, "m-%d", i)})
	}
	eventually(t, "two deliveries", func() bool { return held.len() == 2 })
	held.deliveries()[0].Ack()
	eventually(t, "three deliveries", func() bool { return held.len() == 3 })
	var st rpcbus.SubscriptionStatus
	eventually(t, "the acknowledgement to count", func() bool {
		var err error
		st, err = sub.(rpcbus.StatusReporter).Status(ctxFor(t, 10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		return st.Partitions[1].Committed == 1
	})
	want := []rpcbus.PartitionStatus{
		{Topic: topics[1], Assigned: true, Committed: 0, End: 0, Lag: 0},
		{Topic: topics[0], Assigned: true, Committed: 1, End: 5, Lag: 4},
	}
	if !slices.Equal(st.Partitions, want) || st.AssignedPartitions() != 2 || st.Member == "" {
		t.Fatalf("status %+v, want partitions %+v", st, want)
	}
	for _, d := range held.deliveries()[1:] {
		d.Ack()
	}
}

// TestListGroups: ListGroups names the groups with a member reading the
// topic now (once it has been given an entry), and not those of other
// topics nor those whose members left.
func TestListGroups(t *testing.T) {
	t.Parallel()
	b := newBus(t, map[string]any{"block": "100ms"})
	topic, other := name(t, "topic"), name(t, "other")
	g1, g2, g3 := name(t, "g1"), name(t, "g2"), name(t, "g3")
	ctx := ctxFor(t, 30*time.Second)
	got := newCollector()
	sub := func(group string, topics ...string) rpcbus.Subscription {
		s, err := b.Subscribe(ctx, rpcbus.SubscribeOptions{Topics: topics, Group: group}, got.ack)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close(ctxFor(t, 30*time.Second)) })
		return s
	}
	sub(g1, topic)
	s2 := sub(g2, topic, other)
	sub(g3, other)
	publish(t, b, topic, &rpcbus.Message{Value: []byte("to the topic")})
	publish(t, b, other, &rpcbus.Message{Value: []byte("to the other")})
	eventually(t, "the deliveries", func() bool { return got.count("to the topic") == 2 && got.count("to the other") == 2 })
	want := []string{g1, g2}
	slices.Sort(want)
	if got, err := b.ListGroups(ctx, topic); err != nil || !slices.Equal(got, want) {
		t.Errorf("ListGroups = %q, %v; want %q", got, err, want)
	}
	if err := s2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := b.ListGroups(ctx, topic); err != nil || !slices.Equal(got, []string{g1}) {
		t.Errorf("after g2 closed: ListGroups = %q, %v; want [%s]", got, err, g1)
	}
	if got, err := b.ListGroups(ctx, name(t, "nobody")); err != nil || len(got) != 0 {
		t.Errorf("ListGroups of a topic without a stream = %q, %v", got, err)
	}
}
