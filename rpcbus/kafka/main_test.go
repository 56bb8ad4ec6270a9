package kafka_test

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/bustest"
	"github.com/nextpkg/vrpc/rpcbus/embedded"
	"github.com/nextpkg/vrpc/rpcbus/kafka"
)

// broker is the in-process Kafka every test talks to, each with topics and
// groups of its own.
var broker *embedded.Broker

func TestMain(m *testing.M) {
	// Process-lifetime goroutines of packages the tests import (go-zero's
	// signal handler, through the test harness).
	ignore := goleak.IgnoreCurrent()
	var err error
	broker, err = embedded.Start("127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	broker.Close()
	// Every client, subscription, inbox and broker goroutine must be gone
	// once everything is closed.
	if code == 0 {
		if err := goleak.Find(ignore); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// testSettings make group rebalances quick: a member learns of a
// rebalance at its next heartbeat.
func testSettings() map[string]any {
	return map[string]any{"heartbeat_interval": "100ms"}
}

// newBus returns a kafka bus on the test broker, closed with the test.
func newBus(t testing.TB, set map[string]any) *kafka.Bus {
	t.Helper()
	if set == nil {
		set = testSettings()
	}
	b, err := kafka.New(rpcbus.Config{Type: "kafka", Brokers: []string{broker.Addr()}, Settings: set})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

var unique atomic.Int64

// name returns a topic or group name no other test uses.
func name(t testing.TB, what string) string {
	n := strings.NewReplacer("/", "_", " ", "_", "#", "_").Replace(t.Name())
	return fmt.Sprintf("%s.%s.%d", n, what, unique.Add(1))
}

// ctxFor and eventually are the helpers every backend's tests share.
var (
	ctxFor     = bustest.Context
	eventually = bustest.Eventually
)

// collector records deliveries by value.
type collector struct {
	mu   sync.Mutex
	seen map[string]int
	all  []*rpcbus.Delivery
}

func newCollector() *collector { return &collector{seen: map[string]int{}} }

func (c *collector) add(d *rpcbus.Delivery) {
	c.mu.Lock()
	c.seen[string(d.Value)]++
	c.all = append(c.all, d)
	c.mu.Unlock()
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.all)
}

func (c *collector) deliveries() []*rpcbus.Delivery {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*rpcbus.Delivery(nil), c.all...)
}

func (c *collector) counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string]int, len(c.seen))
	for k, v := range c.seen {
		m[k] = v
	}
	return m
}

func publish(t testing.TB, b rpcbus.Bus, topic string, m *rpcbus.Message) {
	t.Helper()
	if err := b.Publish(ctxFor(t, 30*time.Second), topic, m); err != nil {
		t.Fatalf("publish to %s: %v", topic, err)
	}
}

func subscribe(t testing.TB, b *kafka.Bus, opts rpcbus.SubscribeOptions, h rpcbus.Handler) rpcbus.Subscription {
	t.Helper()
	s, err := b.Subscribe(ctxFor(t, 30*time.Second), opts, h)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newRawClient is a franz-go client of the test broker, closed with the
// test, to look at what the bus made there.
func newRawClient(t testing.TB) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}
