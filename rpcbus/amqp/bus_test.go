package amqp_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/nextpkg/vrpc/rpcbus"
)

// proxy stands between buses and the broker, so that a test can cut their
// connections, or refuse new ones, without touching the shared broker.
type proxy struct {
	ln   net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	down bool
	conn map[net.Conn]bool
}

func startProxy(t *testing.T) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, conn: map[net.Conn]bool{}}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", brokerAddr)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conn[c], p.conn[up] = true, true
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			_, _ = io.Copy(dst, src)
			dst.Close()
			src.Close()
		}
		p.wg.Go(func() { pipe(up, c) })
		p.wg.Go(func() { pipe(c, up) })
	}
}

// cut closes every connection through the proxy.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conn {
		c.Close()
	}
	clear(p.conn)
}

// setDown makes the proxy refuse new connections (and cuts the open ones)
// or accept them again.
func (p *proxy) setDown(down bool) {
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
	if down {
		p.cut()
	}
}

// fastReconnect makes buses behind a proxy reconnect quickly.
var fastReconnect = map[string]any{"reconnect_backoff": "100ms", "dial_timeout": "2s"}

// publishEventually publishes until it succeeds, as vRPC's client and
// server retry failures of the bus, and fails t after a generous limit.
func publishEventually(t *testing.T, b rpcbus.Bus, topic string, m *rpcbus.Message) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err = b.Publish(ctx, topic, m)
		cancel()
		if err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("publish to %s: still failing: %v", topic, err)
}

// TestReconnect: after the connections of a server and a client are cut,
// both reconnect by themselves; the subscription consumes again, the inbox
// receives again at its old address, and publishing works again.
func TestReconnect(t *testing.T) {
	t.Parallel()
	s := newScope(t)
	p := startProxy(t)
	server, client := s.bus(t, fastReconnect, p.addr()), s.bus(t, fastReconnect, p.addr())
	topic := unique("topic")

	sub, err := server.Subscribe(ctxFor(t, 30*time.Second), rpcbus.SubscribeOptions{Topics: []string{topic}, Group: "g"},
		func(d *rpcbus.Delivery) {
			// Echo to the address in the request, then acknowledge.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = server.Publish(ctx, string(d.Value), &rpcbus.Message{Value: []byte("reply")})
			cancel()
			d.Ack()
		})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close(ctxFor(t, 30*time.Second))
	var replies atomic.Int64
	ib, err := client.Inbox(ctxFor(t, 30*time.Second), unique("client"), func(*rpcbus.Message) { replies.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer ib.Close()

	req := &rpcbus.Message{Value: []byte(ib.Address())}
	publishEventually(t, client, topic, req)
	eventually(t, "the first reply", func() bool { return replies.Load() == 1 })

	for round := range 2 {
		p.cut()
		// Requests may be refused or lost while the connections are
		// down; keep asking until a reply comes, as a caller would.
		before := replies.Load()
		eventually(t, fmt.Sprintf("a reply after cut %d", round+1), func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = client.Publish(ctx, topic, req)
			time.Sleep(20 * time.Millisecond)
			return replies.Load() > before
		})
	}
	if err := server.Ping(ctxFor(t, 10*time.Second)); err != nil {
		t.Errorf("Ping after reconnecting: %v", err)
	}
}

// TestPublishWhileDown: while the broker cannot be reached, Publish and
// Ping return when their context ends, with an error wrapping
// ErrNotConnected and the context's error; once the broker is back they
// succeed.
func TestPublishWhileDown(t *testing.T) {
	t.Parallel()
	s := newScope(t)
	p := startProxy(t)
	b := s.bus(t, fastReconnect, p.addr())
	topic := unique("topic")
	sub, err := s.bus(t, nil).Subscribe(ctxFor(t, 30*time.Second), rpcbus.SubscribeOptions{Topics: []string{topic}, Group: "g"},
		func(d *rpcbus.Delivery) { d.Ack() })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close(ctxFor(t, 30*time.Second))
	publishEventually(t, b, topic, &rpcbus.Message{Value: []byte("up")})

	p.setDown(true)
	for _, call := range []struct {
		name string
		do   func(ctx context.Context) error
	}{
		{"Publish", func(ctx context.Context) error { return b.Publish(ctx, topic, &rpcbus.Message{Value: []byte("down")}) }},
		{"Ping", b.Ping},
		{"CreateTopics", func(ctx context.Context) error { return b.CreateTopics(ctx, topic) }},
	} {
		// Once the bus has seen the connection go: until then a publish
		// may still be written to the dying socket.
		// A publish on the connection as it goes fails without waiting
		// for its context, still with ErrNotConnected.
		eventually(t, call.name+" to wait for its context", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			err := call.do(ctx)
			if err == nil {
				return false
			}
			if !errors.Is(err, rpcbus.ErrUnavailable) {
				t.Fatalf("%s while down = %v, want an error wrapping rpcbus.ErrUnavailable", call.name, err)
			}
			return errors.Is(err, context.DeadlineExceeded)
		})
	}

	p.setDown(false)
	publishEventually(t, b, topic, &rpcbus.Message{Value: []byte("up again")})
}

// TestRedeliveryAfterConnectionLoss: what a consumer held unacknowledged
// when its connection was lost is delivered again (here, to the same
// subscription once it has reconnected), and the late acknowledgement of
// the first delivery is harmless.
func TestRedeliveryAfterConnectionLoss(t *testing.T) {
	t.Parallel()
	s := newScope(t)
	p := startProxy(t)
	pub, consumer := s.bus(t, nil), s.bus(t, fastReconnect, p.addr())
	topic := unique("topic")
	got := make(chan *rpcbus.Delivery, 10)
	sub, err := consumer.Subscribe(ctxFor(t, 30*time.Second), rpcbus.SubscribeOptions{Topics: []string{topic}, Group: "g"},
		func(d *rpcbus.Delivery) { got <- d })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close(ctxFor(t, 30*time.Second))
	publishEventually(t, pub, topic, &rpcbus.Message{Value: []byte("m")})
	first := <-got
	p.cut()
	var again *rpcbus.Delivery
	select {
	case again = <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("the message held when the connection was lost was not delivered again")
	}
	first.Ack() // on a channel long gone: does nothing
	if string(again.Value) != "m" {
		t.Fatalf("delivered again %q, want %q", again.Value, "m")
	}
	again.Ack()
	// Nothing else comes: the acknowledgement of the second delivery held.
	publishEventually(t, pub, topic, &rpcbus.Message{Value: []byte("marker")})
	d := <-got
	d.Ack()
	if string(d.Value) != "marker" {
		t.Fatalf("got %q after the redelivery, want the marker", d.Value)
	}
}

// TestSubscribeSeveralTopics: one subscription consumes the group's queue
// on each of its topics, with Topic set, and MaxInFlight bounds the
// deliveries of all of them together.
func TestSubscribeSeveralTopics(t *testing.T) {
	t.Parallel()
	s := newScope(t)
	pub, consumer := s.bus(t, nil), s.bus(t, nil)
	topics := []string{unique("a"), unique("b"), unique("c")}
	const maxInFlight = 4
	var (
		mu   sync.Mutex
		held []*rpcbus.Delivery
		seen = map[string]int{}
	)
	sub, err := consumer.Subscribe(ctxFor(t, 30*time.Second),
		rpcbus.SubscribeOptions{Topics: topics, Group: "g", MaxInFlight: maxInFlight},
		func(d *rpcbus.Delivery) {
			mu.Lock()
			held = append(held, d)
			seen[d.Topic]++
			mu.Unlock()
		})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close(ctxFor(t, 30*time.Second))
	for _, topic := range topics {
		for range 3 {
			publishEventually(t, pub, topic, &rpcbus.Message{Value: []byte(topic)})
		}
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(held)
	}
	eventually(t, "MaxInFlight deliveries", func() bool { return count() == maxInFlight })
	// Acknowledge everything as it comes, until all nine are in.
	eventually(t, "every message", func() bool {
		mu.Lock()
		ds := held
		held = nil
		n := 0
		for _, c := range seen {
			n += c
		}
		mu.Unlock()
		if len(ds) > maxInFlight {
			t.Fatalf("%d deliveries unacknowledged, MaxInFlight is %d", len(ds), maxInFlight)
		}
		for _, d := range ds {
			d.Ack()
		}
		return n == 9
	})
	for _, topic := range topics {
		if seen[topic] != 3 {
			t.Errorf("topic %s: %d deliveries with that Topic, want 3", topic, seen[topic])
		}
	}
}

// TestQueueTypeMismatch: a group queue that exists with another type is
// refused at once by Subscribe, with what to do about it.
func TestQueueTypeMismatch(t *testing.T) {
	t.Parallel()
	s := newScope(t)
	topic := unique("topic")
	quorum, classic := s.bus(t, nil), s.bus(t, map[string]any{"queue_type": "classic"})
	sub, err := quorum.Subscribe(ctxFor(t, 30*time.Second), rpcbus.SubscribeOptions{Topics: []string{topic}, Group: "g"}, func(d *rpcbus.Delivery) { d.Ack() })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close(ctxFor(t, 30*time.Second))
	_, err = classic.Subscribe(ctxFor(t, 30*time.Second), rpcbus.SubscribeOptions{Topics: []string{topic}, Group: "g"}, func(d *rpcbus.Delivery) { d.Ack() })
	if err == nil || !strings.Contains(err.Error(), "queue_type") {
		t.Fatalf("Subscribe to a quorum queue as classic = %v, want an error naming queue_type", err)
	}
	var ae *amqp091.Error
	if !errors.As(err, &ae) || ae.Code != amqp091.PreconditionFailed {
		t.Errorf("error %v does not wrap the broker's PRECONDITION_FAILED", err)
	}
}

// TestMessageTooLarge: a message over max_message_bytes is refused before
// it is sent.
func TestMessageTooLarge(t *testing.T) {
	t.Parallel()
	s := newScope(t)
	b := s.bus(t, map[string]any{"max_message_bytes": 1024})
	err := b.Publish(ctxFor(t, 10*time.Second), unique("topic"), &rpcbus.Message{Value: make([]byte, 1025)})
	if !errors.Is(err, rpcbus.ErrMessageTooLarge) {
		t.Fatalf("Publish of 1025 bytes with max_message_bytes 1024 = %v, want rpcbus.ErrMessageTooLarge", err)
	}
}

// TestInboxAddressUnique: inboxes opened with one name, in one process or
// several, have addresses of their own, and a reply reaches only the inbox
// it is addressed to.
func TestInboxAddressUnique(t *testing.T) {
	t.Parallel()
	s := newScope(t)
	pub, c1, c2 := s.bus(t, nil), s.bus(t, nil), s.bus(t, nil)
	name := unique("client")
	var n1, n2 atomic.Int64
	ib1, err := c1.Inbox(ctxFor(t, 30*time.Second), name, func(*rpcbus.Message) { n1.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer ib1.Close()
	ib2, err := c2.Inbox(ctxFor(t, 30*time.Second), name, func(*rpcbus.Message) { n2.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer ib2.Close()
	if ib1.Address() == ib2.Address() || !strings.HasPrefix(ib1.Address(), name+".") || !rpcbus.ValidName(ib1.Address()) {
		t.Fatalf("addresses %q and %q: want two valid names starting with %q", ib1.Address(), ib2.Address(), name+".")
	}
	publishEventually(t, pub, ib1.Address(), &rpcbus.Message{Value: []byte("1")})
	publishEventually(t, pub, ib2.Address(), &rpcbus.Message{Value: []byte("2")})
	publishEventually(t, pub, ib2.Address(), &rpcbus.Message{Value: []byte("3")})
	eventually(t, "the replies", func() bool { return n1.Load() == 1 && n2.Load() == 2 })

	// A closed inbox's address is gone.
	if err := ib1.Close(); err != nil {
		t.Fatal(err)
	}
	err = pub.Publish(ctxFor(t, 10*time.Second), ib1.Address(), &rpcbus.Message{Value: []byte("late")})
	if !errors.Is(err, rpcbus.ErrUnknownTopic) {
		t.Errorf("Publish to a closed inbox = %v, want rpcbus.ErrUnknownTopic", err)
	}
}

// TestSubscriptionCloseWhileDown: a subscription whose connection is down
// closes without hanging, and so does its bus.
func TestSubscriptionCloseWhileDown(t *testing.T) {
	t.Parallel()
	s := newScope(t)
	p := startProxy(t)
	b := s.newBus(t, fastReconnect, p.addr())
	sub, err := b.Subscribe(ctxFor(t, 30*time.Second), rpcbus.SubscribeOptions{Topics: []string{unique("topic")}, Group: "g"},
		func(d *rpcbus.Delivery) { d.Ack() })
	if err != nil {
		t.Fatal(err)
	}
	p.setDown(true)
	if err := sub.Close(ctxFor(t, 10*time.Second)); err != nil {
		t.Errorf("Subscription.Close while down: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("Bus.Close while down: %v", err)
	}
}

// TestSubscribeWhileDown: Subscribe and Inbox wait for the connection
// until their context ends, then fail with ErrNotConnected.
func TestSubscribeWhileDown(t *testing.T) {
	t.Parallel()
	s := newScope(t)
	p := startProxy(t)
	p.setDown(true)
	b := s.bus(t, fastReconnect, p.addr())
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := b.Subscribe(ctx, rpcbus.SubscribeOptions{Topics: []string{unique("topic")}, Group: "g"}, func(d *rpcbus.Delivery) { d.Ack() })
	if !errors.Is(err, rpcbus.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Subscribe while down = %v, want an error wrapping rpcbus.ErrUnavailable and context.DeadlineExceeded", err)
	}
	_, err = b.Inbox(ctx, unique("client"), func(*rpcbus.Message) {})
	if !errors.Is(err, rpcbus.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Inbox while down = %v, want an error wrapping rpcbus.ErrUnavailable and context.DeadlineExceeded", err)
	}
}

// TestBadCredentials: a bus with a wrong password keeps trying; once the
// broker has refused the login, calls fail at once with an error that
// wraps rpcbus.ErrUnauthenticated (not rpcbus.ErrUnavailable) and names
// the settings to check.
func TestBadCredentials(t *testing.T) {
	t.Parallel()
	s := newScope(t)
	b := s.bus(t, map[string]any{"password": "wrong", "reconnect_backoff": "200ms"})
	// RabbitMQ answers a failed login after a few seconds; until then the
	// error says there is no answer yet.
	var err error
	eventually(t, "the broker's refusal", func() bool {
		err = b.Ping(ctxFor(t, 200*time.Millisecond))
		return !errors.Is(err, rpcbus.ErrUnavailable)
	})
	if !errors.Is(err, rpcbus.ErrUnauthenticated) || !strings.Contains(err.Error(), "403") ||
		!strings.Contains(err.Error(), "rpc_bus.settings.username and password") {
		t.Fatalf("Ping with a wrong password = %v, want an error wrapping ErrUnauthenticated with the broker's 403 and the settings", err)
	}
	// Later calls need not wait for their context.
	_, err = b.Subscribe(ctxFor(t, time.Minute), rpcbus.SubscribeOptions{Topics: []string{unique("topic")}, Group: "g"},
		func(d *rpcbus.Delivery) { d.Ack() })
	if !errors.Is(err, rpcbus.ErrUnauthenticated) {
		t.Errorf("Subscribe with a wrong password = %v, want an error wrapping ErrUnauthenticated", err)
	}
}

// TestTLS: with tls_ca_file, tls_cert_file and tls_key_file the bus
// speaks TLS, verifies the server against the CA and shows its client
// certificate; here to a TLS proxy in front of the broker that requires
// one. Without the CA the server is not trusted.
func TestTLS(t *testing.T) {
	t.Parallel()
	s := newScope(t)
	certFile, keyFile := writeCert(t)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pemBytes, err := os.ReadFile(certFile)
	if err != nil || !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatalf("reading %s: %v", certFile, err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", brokerAddr)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, up)
			mu.Unlock()
			wg.Go(func() { _, _ = io.Copy(up, c); up.Close() })
			wg.Go(func() { _, _ = io.Copy(c, up); c.Close() })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})

	b := s.bus(t, map[string]any{"tls_ca_file": certFile, "tls_cert_file": certFile, "tls_key_file": keyFile,
		"tls_server_name": "vrpc-test"}, ln.Addr().String())
	topic := unique("topic")
	got := make(chan string, 1)
	sub, err := b.Subscribe(ctxFor(t, 30*time.Second), rpcbus.SubscribeOptions{Topics: []string{topic}, Group: "g"},
		func(d *rpcbus.Delivery) { got <- string(d.Value); d.Ack() })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close(ctxFor(t, 30*time.Second))
	publishEventually(t, b, topic, &rpcbus.Message{Value: []byte("over tls")})
	if v := <-got; v != "over tls" {
		t.Fatalf("got %q", v)
	}

	untrusting := s.bus(t, map[string]any{"tls": true, "tls_server_name": "vrpc-test", "reconnect_backoff": "100ms"}, ln.Addr().String())
	// Until the first handshake has failed the error says there is no
	// answer yet; on a loaded machine that can take longer than one Ping.
	eventually(t, "the failed handshake", func() bool {
		err = untrusting.Ping(ctxFor(t, 200*time.Millisecond))
		return err == nil || !strings.Contains(err.Error(), "no answer yet")
	})
	if !errors.Is(err, rpcbus.ErrUnavailable) || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Ping without the CA = %v, want ErrNotConnected about the certificate", err)
	}
}

// TestStatus: a subscription reports its queues, as consumed, with the
// messages waiting in them; and consumes again after its queue was deleted
// under it.
func TestStatus(t *testing.T) {
	t.Parallel()
	s := newScope(t)
	pub, consumer := s.bus(t, nil), s.bus(t, nil)
	topic := unique("topic")
	var held []*rpcbus.Delivery
	var mu sync.Mutex
	sub, err := consumer.Subscribe(ctxFor(t, 30*time.Second), rpcbus.SubscribeOptions{Topics: []string{topic}, Group: "g", MaxInFlight: 1},
		func(d *rpcbus.Delivery) { mu.Lock(); held = append(held, d); mu.Unlock() })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close(ctxFor(t, 30*time.Second))
	for range 3 {
		publishEventually(t, pub, topic, &rpcbus.Message{Value: []byte("m")})
	}
	// One delivered and held (MaxInFlight 1), two waiting.
	eventually(t, "a lag of 2", func() bool {
		st, err := sub.(rpcbus.StatusReporter).Status(ctxFor(t, 10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if st.Group != "g" || len(st.Partitions) != 1 || st.Partitions[0].Topic != topic || !st.Partitions[0].Assigned {
			t.Fatalf("status %+v: want one assigned queue on %s for group g", st, topic)
		}
		return st.Partitions[0].Lag == 2
	})
	mu.Lock()
	for _, d := range held {
		d.Ack()
	}
	held = nil
	mu.Unlock()

	// An operator deletes the queue: the broker cancels the consumer, and
	// the subscription declares the queue again and goes on.
	admin, err := amqp091.Dial("amqp://guest:guest@" + brokerAddr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ch, err := admin.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDelete(topic+":g", false, false, false); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a delivery after the queue was deleted", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = pub.Publish(ctx, topic, &rpcbus.Message{Value: []byte("again")})
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		for _, d := range held {
			d.Ack()
		}
		n := len(held)
		held = nil
		return n > 0
	})
}
