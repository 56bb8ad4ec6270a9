package embedded_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/embedded"
	"github.com/nextpkg/vrpc/rpcbus/kafka"
)

func TestMain(m *testing.M) {
	ignore := goleak.IgnoreCurrent()
	code := m.Run()
	// Every broker, client and subscription goroutine must be gone once
	// everything is closed.
	if code == 0 {
		if err := goleak.Find(ignore); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

var unique atomic.Int64

// name returns a topic or group name no other test uses.
func name(t testing.TB, what string) string {
	n := strings.NewReplacer("/", "_", " ", "_", "#", "_").Replace(t.Name())
	return fmt.Sprintf("%s.%s.%d", n, what, unique.Add(1))
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// testSettings make group rebalances quick.
func testSettings() map[string]any {
	return map[string]any{"heartbeat_interval": "100ms"}
}

func publish(t testing.TB, b rpcbus.Bus, topic string, m *rpcbus.Message) {
	t.Helper()
	if err := b.Publish(ctxFor(t, 30*time.Second), topic, m); err != nil {
		t.Fatalf("publish to %s: %v", topic, err)
	}
}

func TestRegistry(t *testing.T) {
	t.Parallel()
	if types := rpcbus.Types(); !slices.Contains(types, "embedded") {
		t.Errorf("rpcbus.Types() = %q, missing %q", types, "embedded")
	}
	b, err := rpcbus.New(rpcbus.Config{Type: "embedded", Brokers: []string{"127.0.0.1:0"}})
	if err != nil {
		t.Fatalf("rpcbus.New(embedded): %v", err)
	}
	topic := name(t, "embedded")
	if err := b.(rpcbus.TopicCreator).CreateTopics(ctxFor(t, 30*time.Second), topic); err != nil {
		t.Fatal(err)
	}
	publish(t, b, topic, &rpcbus.Message{Value: []byte("x")})
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestSettings: type embedded takes type kafka's settings and data_dir,
// but not TLS, and names a bad key.
func TestSettings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		settings map[string]any
		want     string // in the error; "" for none
	}{
		{settings: nil},
		{settings: map[string]any{"data_dir": ""}},
		{settings: map[string]any{"batch_size": 100, "acks": "leader", "data_dir": ""}},
		{settings: map[string]any{"dir": ""}, want: "data_dir"}, // listed as known
		{settings: map[string]any{"compresion": "gzip"}, want: `rpc_bus.settings.compresion: unknown key (did you mean compression?`},
		{settings: map[string]any{"acks": "1"}, want: "rpc_bus.settings.acks"},
		{settings: map[string]any{"tls": true}, want: "rpc_bus.settings.tls: the embedded broker serves plain TCP"},
	} {
		b, err := embedded.New(rpcbus.Config{Brokers: []string{"127.0.0.1:0"}, Settings: tc.settings})
		if err == nil {
			_ = b.Close()
		}
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("settings %v: %v", tc.settings, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("settings %v: error %v, want one containing %q", tc.settings, err, tc.want)
		case tc.want != "":
			var se *rpcbus.SettingError
			if !errors.As(err, &se) {
				t.Errorf("settings %v: error %T is not a *SettingError", tc.settings, err)
			}
		}
	}
	if _, err := embedded.New(rpcbus.Config{Brokers: []string{"127.0.0.1:0", "127.0.0.1:0"}}); err == nil ||
		!strings.Contains(err.Error(), "rpc_bus.brokers") {
		t.Errorf("two broker addresses: %v, want an error naming rpc_bus.brokers", err)
	}
}

// TestShared starts two buses of type embedded at one address: they share
// a broker, which outlives the first Close and stops with the last.
func TestShared(t *testing.T) {
	t.Parallel()
	b1, err := embedded.New(rpcbus.Config{Brokers: []string{"127.0.0.1:0"}, Settings: testSettings()})
	if err != nil {
		t.Fatal(err)
	}
	addr := b1.Brokers()[0]
	if _, port, _ := net.SplitHostPort(addr); port == "0" {
		t.Fatalf("Brokers() = %q, want the bound port", addr)
	}
	b2, err := embedded.New(rpcbus.Config{Brokers: []string{addr}, Settings: testSettings()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := embedded.New(rpcbus.Config{Brokers: []string{addr}, Settings: map[string]any{"data_dir": t.TempDir()}}); !errors.Is(err, embedded.ErrConflict) {
		t.Errorf("embedded with another data_dir at %s: %v, want ErrConflict", addr, err)
	}
	e, err := embedded.Start(addr) // a third handle, as the CLI would take
	if err != nil {
		t.Fatal(err)
	}
	if e.Addr() != addr {
		t.Errorf("Addr() = %q, want %q", e.Addr(), addr)
	}

	topic := name(t, "topic")
	if err := b1.CreateTopics(ctxFor(t, 30*time.Second), topic); err != nil {
		t.Fatal(err)
	}
	if err := b1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b1.Close(); err != nil { // no effect
		t.Fatal(err)
	}
	e.Close()
	e.Close() // no effect
	// Still running for b2, and the topic b1 created is there.
	publish(t, b2, topic, &rpcbus.Message{Value: []byte("x")})
	if err := b2.Close(); err != nil {
		t.Fatal(err)
	}
	// The last Close stopped it: nothing listens any more.
	if c, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
		c.Close()
		t.Errorf("something still listens on %s after the last Close", addr)
	}
}

// TestDataDir restarts an embedded broker on its data_dir: topics and
// messages survive.
func TestDataDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := rpcbus.Config{Brokers: []string{"127.0.0.1:0"}, Settings: map[string]any{"data_dir": dir, "heartbeat_interval": "100ms"}}
	b, err := embedded.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	topic := name(t, "requests")
	if err := b.CreateTopics(ctxFor(t, 30*time.Second), topic); err != nil {
		t.Fatal(err)
	}
	publish(t, b, topic, &rpcbus.Message{Value: []byte("kept")})
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b, err = embedded.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	got := make(chan string, 1)
	s, err := b.Subscribe(ctxFor(t, 30*time.Second), rpcbus.SubscribeOptions{Topics: []string{topic}, Group: name(t, "group")},
		func(d *rpcbus.Delivery) { got <- string(d.Value); d.Ack() })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(ctxFor(t, 30*time.Second)) })
	select {
	case v := <-got:
		if v != "kept" {
			t.Errorf("got %q after restart, want %q", v, "kept")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("message lost across restart")
	}
}

// TestKafkaClients: other processes reach the broker with type kafka, and
// the bus keeps the Kafka bus's optional interfaces.
func TestKafkaClients(t *testing.T) {
	t.Parallel()
	b, err := embedded.New(rpcbus.Config{Brokers: []string{"127.0.0.1:0"}, Settings: testSettings()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	var bus rpcbus.Bus = b
	for what, ok := range map[string]bool{
		"Inboxer":      is[rpcbus.Inboxer](bus),
		"TopicCreator": is[rpcbus.TopicCreator](bus),
		"Pinger":       is[rpcbus.Pinger](bus),
	} {
		if !ok {
			t.Errorf("an embedded bus is not an rpcbus.%s", what)
		}
	}
	c, err := kafka.New(rpcbus.Config{Brokers: b.Brokers(), Settings: testSettings()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	topic := name(t, "topic")
	if err := b.CreateTopics(ctxFor(t, 30*time.Second), topic); err != nil {
		t.Fatal(err)
	}
	publish(t, c, topic, &rpcbus.Message{Value: []byte("x")})
}

func is[T any](v any) bool { _, ok := v.(T); return ok }
