package nats_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nextpkg/vrpc/rpcbus"
)

// proxy forwards TCP connections to the NATS server until cut, which
// drops them all and refuses new ones until restore: a network outage the
// test controls, without touching the shared server.
type proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			defer p.wg.Done()
			_, _ = io.Copy(dst, src)
			dst.Close()
			src.Close()
		}
		go pipe(up, c)
		go pipe(c, up)
	}
}

// cut drops every connection and refuses new ones.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *proxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

func (p *proxy) close() {
	p.ln.Close()
	p.cut()
	p.wg.Wait()
}

// TestReconnect: a server and a client that lose their connections go on
// once the network is back; a publish while it is down fails within its
// context instead of hanging.
func TestReconnect(t *testing.T) {
	needServer(t)
	t.Parallel()
	p := startProxy(t, serverAddr)
	set := map[string]any{"reconnect_wait": "100ms", "ack_wait": "5s"}
	newProxied := func() rpcbus.Bus {
		b, err := rpcbus.New(rpcbus.Config{Type: "nats", Brokers: []string{p.addr()}, Settings: set})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	server, client := newProxied(), newProxied()
	topic := name(t, "requests")
	t.Cleanup(func() { deleteStreams(t, topic) })

	// The server answers each request on the address it carries.
	subscribe(t, server, rpcbus.SubscribeOptions{Topics: []string{topic}, Group: name(t, "server")}, func(d *rpcbus.Delivery) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := server.Publish(ctx, string(d.Value), &rpcbus.Message{Value: []byte("pong")}); err == nil {
			d.Ack()
		}
	})
	replies := make(chan struct{}, 100)
	ib, err := client.(rpcbus.Inboxer).Inbox(ctxFor(t, 30*time.Second), name(t, "client"), func(*rpcbus.Message) { replies <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	defer ib.Close()
	// roundTrip retries until a reply comes back: requests or replies
	// sent around an outage may be lost, the calls after it must work.
	roundTrip := func(what string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err := client.Publish(ctx, topic, &rpcbus.Message{Value: []byte(ib.Address())})
			if err == nil {
				select {
				case <-replies:
					cancel()
					return
				case <-ctx.Done():
				}
			}
			cancel()
		}
		t.Fatalf("%s: no round trip within 30s", what)
	}
	roundTrip("before the outage")

	p.cut()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	start := time.Now()
	err = client.Publish(ctx, topic, &rpcbus.Message{Value: []byte(ib.Address())})
	cancel()
	t.Logf("Publish while the server is unreachable: %v", err)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Publish while the server is unreachable = %v, want an error wrapping DeadlineExceeded", err)
	}
	// Generous: only a Publish that ignored its context comes near it.
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Publish with a 300ms context returned after %v", d)
	}

	p.restore()
	roundTrip("after the outage")
	// And again, once more, for the pull requests renewed after the
	// reconnect, not just one left over.
	for range 5 {
		roundTrip("after the outage")
	}
}
