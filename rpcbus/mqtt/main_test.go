package mqtt_test

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/bustest"
	"github.com/nextpkg/vrpc/rpcbus/mqtt"
)

// brokerAddr is the machine's Mosquitto, which every test uses with topics,
// groups and client ids of its own. VRPC_MQTT_BROKER overrides it.
var brokerAddr = "127.0.0.1:1883"

// brokerErr is why the broker cannot be reached; nil when it can.
var brokerErr error

const startHint = "start it with `mosquitto -d -c /etc/mosquitto/mosquitto.conf`"

func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.DiscardHandler)) // the end-to-end test's vRPC server logs
	// Process-lifetime goroutines go-zero starts in package init.
	ignore := goleak.IgnoreCurrent()
	if a := os.Getenv("VRPC_MQTT_BROKER"); a != "" {
		brokerAddr = a
	}
	c, err := net.DialTimeout("tcp", brokerAddr, 2*time.Second)
	if err != nil {
		brokerErr = err
	} else {
		_ = c.Close()
	}
	code := m.Run()
	// Every connection, subscription, adoption and inbox goroutine must be
	// gone once everything is closed.
	if code == 0 {
		if err := goleak.Find(ignore); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// needBroker skips t when Mosquitto is not reachable, or fails it under CI,
// where the broker must be up.
func needBroker(t testing.TB) {
	t.Helper()
	if brokerErr == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("Mosquitto is not reachable at %s (%v); CI=true needs it: %s", brokerAddr, brokerErr, startHint)
	}
	t.Skipf("Mosquitto is not reachable at %s (%v): %s", brokerAddr, brokerErr, startHint)
}

// testSettings keep what tests leave on the broker short-lived: sessions
// and markers of members that closed expire after 30s. A lost connection is
// handed to the group after a second.
func testSettings() map[string]any {
	return map[string]any{
		"session_expiry":        "30s",
		"will_delay":            "1s",
		"keepalive":             "5s",
		"reconnect_backoff_max": "200ms",
		"client_id_prefix":      "vrpc-test-",
	}
}

// newBus returns an mqtt bus on the test broker, closed with the test.
func newBus(t testing.TB, set map[string]any) *mqtt.Bus {
	t.Helper()
	needBroker(t)
	if set == nil {
		set = testSettings()
	}
	b, err := mqtt.New(rpcbus.Config{Type: "mqtt", Brokers: []string{brokerAddr}, Settings: set})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

var unique atomic.Int64

// name returns a topic or group name no other test (nor an earlier run)
// uses.
func name(t testing.TB, what string) string {
	n := strings.NewReplacer("/", "_", " ", "_", "#", "_", "+", "_").Replace(t.Name())
	return fmt.Sprintf("mqtt-test.%s.%s.%d-%d", n, what, time.Now().UnixNano(), unique.Add(1))
}

// ctxFor and eventually are the helpers every backend's tests share.
var (
	ctxFor     = bustest.Context
	eventually = bustest.Eventually
)
