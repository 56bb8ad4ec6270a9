package nats_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"go.uber.org/goleak"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/bustest"
	"github.com/nextpkg/vrpc/rpcbus/nats"
)

// The machine's NATS server with JetStream; VRPC_NATS_ADDR overrides it.
const startCommand = "start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- " +
	"-a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log"

var (
	serverAddr  = "127.0.0.1:4222"
	unreachable error // why the server cannot be used, or nil
)

func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.DiscardHandler)) // the end-to-end tests run vRPC servers and clients
	if a := os.Getenv("VRPC_NATS_ADDR"); a != "" {
		serverAddr = a
	}
	if c, err := net.DialTimeout("tcp", serverAddr, 2*time.Second); err != nil {
		unreachable = err
	} else {
		c.Close()
	}
	// Process-lifetime goroutines go-zero starts in package init.
	ignore := goleak.IgnoreCurrent()
	code := m.Run()
	closeAdmin()
	// Every connection, subscription and inbox goroutine must be gone once
	// everything is closed.
	if code == 0 {
		if err := goleak.Find(ignore); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// needServer skips t when the NATS server is not reachable, saying how to
// start it; under CI (CI=true) it fails t instead.
func needServer(t testing.TB) {
	t.Helper()
	if unreachable == nil {
		return
	}
	msg := fmt.Sprintf("no NATS server with JetStream at %s (%v); start it with:\n\t%s", serverAddr, unreachable, startCommand)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// testSettings keep redeliveries after a lost delivery (not a closed
// member, whose deliveries go back at once) short.
func testSettings() map[string]any { return map[string]any{"ack_wait": "5s"} }

// newBus returns a bus on the test server, closed with the test; the
// streams it created are deleted after that.
func newBus(t testing.TB, set map[string]any) *nats.Bus {
	t.Helper()
	needServer(t)
	if set == nil {
		set = testSettings()
	}
	b, err := nats.New(rpcbus.Config{Type: "nats", Brokers: []string{serverAddr}, Settings: set})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteStreams(t, b.KnownTopics()...) })
	t.Cleanup(func() { _ = b.Close() })
	return b
}

var (
	adminMu sync.Mutex
	adminNC *natsgo.Conn
	adminJS jetstream.JetStream
)

// admin returns a JetStream client of the test server for cleaning up.
func admin(t testing.TB) jetstream.JetStream {
	t.Helper()
	adminMu.Lock()
	defer adminMu.Unlock()
	if adminJS == nil {
		nc, err := natsgo.Connect(serverAddr)
		if err != nil {
			t.Fatal(err)
		}
		js, err := jetstream.New(nc)
		if err != nil {
			nc.Close()
			t.Fatal(err)
		}
		adminNC, adminJS = nc, js
	}
	return adminJS
}

func closeAdmin() {
	adminMu.Lock()
	defer adminMu.Unlock()
	if adminNC != nil {
		adminNC.Close()
		adminNC, adminJS = nil, nil
	}
}

// deleteStreams deletes the streams of topics, so that reruns start clean
// and the shared server does not fill up.
func deleteStreams(t testing.TB, topics ...string) {
	if len(topics) == 0 {
		return
	}
	js := admin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, topic := range topics {
		err := js.DeleteStream(ctx, nats.StreamName(topic))
		if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("deleting the stream of %s: %v", topic, err)
		}
	}
}

// deleteStreamsUnder deletes every stream carrying a subject under
// prefix: those a vRPC server created for a test.
func deleteStreamsUnder(t testing.TB, prefix string) {
	js := admin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	names := js.StreamNames(ctx, jetstream.WithStreamListSubject(prefix+".>"))
	var streams []string
	for n := range names.Name() {
		streams = append(streams, n)
	}
	if err := names.Err(); err != nil {
		t.Errorf("listing the streams under %s: %v", prefix, err)
	}
	for _, n := range streams {
		if err := js.DeleteStream(ctx, n); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("deleting stream %s: %v", n, err)
		}
	}
}

// name returns a topic, group or inbox name no other test or run uses.
func name(t testing.TB, what string) string {
	n := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, t.Name())
	return fmt.Sprintf("natstest.%s.%s.%s", n, what, strings.ToLower(nuid.Next()[:10]))
}

// ctxFor and eventually are the helpers every backend's tests share.
var (
	ctxFor     = bustest.Context
	eventually = bustest.Eventually
)

func publish(t testing.TB, b rpcbus.Bus, topic string, m *rpcbus.Message) {
	t.Helper()
	if err := b.Publish(ctxFor(t, 30*time.Second), topic, m); err != nil {
		t.Fatalf("publish to %s: %v", topic, err)
	}
}

func subscribe(t testing.TB, b rpcbus.Bus, opts rpcbus.SubscribeOptions, h rpcbus.Handler) rpcbus.Subscription {
	t.Helper()
	s, err := b.Subscribe(ctxFor(t, 30*time.Second), opts, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(ctxFor(t, 30*time.Second)); err != nil && !errors.Is(err, rpcbus.ErrClosed) {
			t.Errorf("Subscription.Close: %v", err)
		}
	})
	return s
}

// collector records deliveries by value.
type collector struct {
	mu  sync.Mutex
	all []*rpcbus.Delivery
}

func (c *collector) add(d *rpcbus.Delivery) {
	c.mu.Lock()
	c.all = append(c.all, d)
	c.mu.Unlock()
}

func (c *collector) ack(d *rpcbus.Delivery) { c.add(d); d.Ack() }

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.all)
}

func (c *collector) values() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, len(c.all))
	for i, d := range c.all {
		out[i] = string(d.Value)
	}
	return out
}

func (c *collector) has(v string) bool { return slices.Contains(c.values(), v) }
