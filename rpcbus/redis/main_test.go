package redis_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/bustest"
	"github.com/nextpkg/vrpc/rpcbus/redis"
)

// startCommand starts the machine's Redis as the tests expect it.
const startCommand = `redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no ` +
	`--dir /var/lib/redis --logfile /var/log/redis/ci.log`

var (
	// addr is the Redis server of the tests: VRPC_REDIS_ADDR, or the
	// machine's.
	addr = func() string {
		if a := os.Getenv("VRPC_REDIS_ADDR"); a != "" {
			return a
		}
		return "127.0.0.1:6379"
	}()
	// runPrefix starts every key this run creates, so that TestMain can
	// delete them all, and runs never see each other's streams.
	runPrefix = "vrpctest:" + strings.ToLower(rand.Text()[:10]) + ":"
	// unreachable says why the server could not be reached; nil if it can.
	unreachable error
)

func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.DiscardHandler))
	unreachable = ping(addr)
	// Goroutines go-zero (imported by the end-to-end test) starts in
	// package init are not ours.
	ignore := goleak.IgnoreCurrent()
	code := m.Run()
	if unreachable == nil {
		if err := deleteKeys(runPrefix); err != nil {
			fmt.Fprintln(os.Stderr, "deleting the test keys:", err)
			code = 1
		}
	}
	// Every client, subscription and inbox goroutine must be gone once
	// everything is closed.
	if code == 0 {
		if err := goleak.Find(ignore); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func ping(addr string) error {
	c := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 2 * time.Second})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return c.Ping(ctx).Err()
}

// deleteKeys deletes every key starting with prefix.
func deleteKeys(prefix string) error {
	c := goredis.NewClient(&goredis.Options{Addr: addr})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return err
	}
	for len(keys) > 0 {
		n := min(len(keys), 500)
		if err := c.Unlink(ctx, keys[:n]...).Err(); err != nil {
			return err
		}
		keys = keys[n:]
	}
	return nil
}

// needRedis skips t when the server cannot be reached, saying how to start
// it; under CI it fails t instead.
func needRedis(t testing.TB) {
	t.Helper()
	if unreachable == nil {
		return
	}
	msg := fmt.Sprintf("Redis at %s is not reachable (%v); start it with:\n\t%s", addr, unreachable, startCommand)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// testSettings are rpc_bus.settings with this run's key prefix, plus set.
func testSettings(set map[string]any) map[string]any {
	m := map[string]any{"key_prefix": runPrefix}
	for k, v := range set {
		m[k] = v
	}
	return m
}

// newBus returns a bus on the test server with testSettings(set), closed
// with the test.
func newBus(t testing.TB, set map[string]any) *redis.Bus {
	t.Helper()
	needRedis(t)
	b, err := redis.New(rpcbus.Config{Type: "redis", Brokers: []string{addr}, Settings: testSettings(set)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// rawClient returns a plain go-redis client of the test server, closed with
// the test.
func rawClient(t testing.TB) *goredis.Client {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

var unique atomic.Int64

// name returns a topic, group or inbox name no other test uses.
func name(t testing.TB, what string) string {
	n := strings.NewReplacer("/", "_", " ", "_", "#", "_", "=", "-").Replace(t.Name())
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

func (c *collector) ack(d *rpcbus.Delivery) {
	c.add(d)
	d.Ack()
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.all)
}

func (c *collector) count(v string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[v]
}

func (c *collector) deliveries() []*rpcbus.Delivery {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*rpcbus.Delivery(nil), c.all...)
}

func publish(t testing.TB, b rpcbus.Bus, topic string, m *rpcbus.Message) {
	t.Helper()
	if err := b.Publish(ctxFor(t, 30*time.Second), topic, m); err != nil {
		t.Fatalf("publish to %s: %v", topic, err)
	}
}

func subscribe(t testing.TB, b *redis.Bus, opts rpcbus.SubscribeOptions, h rpcbus.Handler) rpcbus.Subscription {
	t.Helper()
	s, err := b.Subscribe(ctxFor(t, 30*time.Second), opts, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(ctxFor(t, 30*time.Second)) })
	return s
}
