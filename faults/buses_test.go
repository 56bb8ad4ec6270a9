package faults_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/internal/vtest"
	"github.com/nextpkg/vrpc/rpcbus"
	_ "github.com/nextpkg/vrpc/rpcbus/all" // every rpc_bus.type, in this process and the server processes
	"github.com/nextpkg/vrpc/vclient"
)

// crossProcessBuses are the buses whose servers can run in processes of
// their own: every bus but memory. "kafka" is the in-process Kafka (kfake)
// each test starts; the others are the machine's shared servers, each test
// with names of its own.
var crossProcessBuses = []string{"kafka", "nats", "amqp", "redis", "mqtt"}

// sharedBroker is the machine's server of each plug-in bus, its override
// variable (the one the backend's own tests read) and how to start it.
var sharedBroker = map[string]struct{ addr, env, hint string }{
	"nats": {"127.0.0.1:4222", "VRPC_NATS_ADDR",
		"start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server"},
	"amqp":  {"127.0.0.1:5672", "", "rabbitmq-server -detached"},
	"redis": {"127.0.0.1:6379", "VRPC_REDIS_ADDR", `redis-server --daemonize yes --port 6379 --save "" --appendonly no`},
	"mqtt":  {"127.0.0.1:1883", "VRPC_MQTT_BROKER", "mosquitto -d -c /etc/mosquitto/mosquitto.conf"},
}

// needBroker skips t when the machine's server of kind is not reachable,
// saying how to start it; under CI (CI=true) it fails t instead, as the
// backends' own tests do.
func needBroker(t testing.TB, kind string) string {
	t.Helper()
	b := sharedBroker[kind]
	addr := b.addr
	if v := os.Getenv(b.env); b.env != "" && v != "" {
		addr = v
	}
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err == nil {
		c.Close()
		return addr
	}
	msg := fmt.Sprintf("%s bus: no server at %s (%v); start it with: %s", kind, addr, err, b.hint)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// testBus is an rpc_bus the fault scenarios run on, with request topics, a
// server group, reply topics and client ids no other test or run uses, so
// that tests sharing a broker never see each other's messages.
type testBus struct {
	kind string
	// addr is the broker's address.
	addr string
	cfg  rpcbus.Config
	// requests and responses are topics.request and topics.response of the
	// servers and clients; group is the servers' name (consumer group).
	requests, responses, group string
	// unique is in every name above, and in the client ids.
	unique string
}

// newTestBus returns a bus of kind for t: on the broker at addr, or, when
// addr is "", on a new in-process Kafka (kafka), the machine's shared
// server (nats, amqp, redis, mqtt), or a memory bus of its own (memory).
// On a shared server, what the test leaves there (streams, queues, keys,
// retained markers) is deleted when the test ends, after its servers and
// clients have stopped.
//
// The settings make a dead member's requests reach another member quickly:
// within about 2s on Kafka (session timeout), NATS (ack_wait) and Redis
// (claim_idle), at once on RabbitMQ (the broker requeues a closed
// channel's deliveries), and after 1s on MQTT (will_delay, then the group
// adopts the session). Reconnection backoffs are short.
func newTestBus(t testing.TB, kind, addr string) *testBus {
	t.Helper()
	u := strings.ToLower(rand.Text()[:10])
	b := &testBus{
		kind:      kind,
		requests:  "faults." + kind + "." + u + ".requests",
		responses: "faults." + kind + "." + u + ".responses",
		group:     "faults-" + u,
		unique:    u,
	}
	shared := addr == ""
	if shared && kind != "kafka" && kind != "memory" {
		addr = needBroker(t, kind)
	}
	var set map[string]any
	switch kind {
	case "kafka":
		if addr == "" {
			addr = startKafka(t)
		}
		set = map[string]any{"session_timeout": "2s", "heartbeat_interval": "200ms"}
	case "memory":
		addr = "faults-" + u
	case "nats":
		set = map[string]any{"ack_wait": "2s", "reconnect_wait": "250ms"}
	case "amqp":
		// An exchange of the test's own, under the prefix of its topics,
		// so that removing what the test left removes it too.
		set = map[string]any{"exchange": "faults." + kind + "." + u, "queue_expires": "10m", "reconnect_backoff": "250ms"}
	case "redis":
		set = map[string]any{"key_prefix": "vrpc-faults:" + u + ":", "claim_idle": "2s"}
	case "mqtt":
		set = map[string]any{
			"session_expiry":        "30s",
			"will_delay":            "1s",
			"keepalive":             "5s",
			"reconnect_backoff_max": "200ms",
			"client_id_prefix":      "vrpc-faults-" + u + "-",
		}
	default:
		t.Fatalf("no test bus of kind %q", kind)
	}
	b.addr = addr
	b.cfg = rpcbus.Config{Type: kind, Brokers: []string{addr}, Settings: set}
	if shared && kind != "kafka" && kind != "memory" {
		// The machine's servers keep what the test made (streams, queues,
		// keys, sessions): the bus removes it when the test ends.
		t.Cleanup(func() {
			cleanup(t, func(ctx context.Context) error {
				rb, err := rpcbus.New(b.cfg)
				if err != nil {
					return err
				}
				defer rb.Close()
				return rb.(rpcbus.Remover).Remove(ctx, rpcbus.Leftovers{
					Topics: []string{b.requestTopic()},
					Groups: []string{b.group},
					Prefix: "faults." + kind + "." + u,
				})
			})
		})
	}
	return b
}

// serverConfig is a server of the bus's group forwarding target to
// endpoint, tagging each call with name.
func (b *testBus) serverConfig(endpoint, name string) *vrpc.Config {
	cfg := &vrpc.Config{
		Name:         b.group,
		Port:         -1,
		RpcBus:       b.cfg,
		Targets:      map[string]vrpc.Target{target: {Endpoint: endpoint, Timeout: "30s"}},
		Plugins:      []vrpc.PluginConf{{Name: tagPlugin, Enabled: true, Settings: map[string]any{"server": name}}},
		MaxInFlight:  32,
		DrainTimeout: 20 * time.Second,
	}
	cfg.Topics.Request, cfg.Topics.Response = b.requests, b.responses
	return cfg
}

// client returns a client of the bus, closed when the test ends.
func (b *testBus) client(t testing.TB, id string) *vclient.Client {
	t.Helper()
	return b.clientWith(t, id, nil)
}

// clientWith is client with its configuration changed by set (if not nil).
func (b *testBus) clientWith(t testing.TB, id string, set func(*vclient.Config)) *vclient.Client {
	t.Helper()
	cfg := vclient.Config{ClientID: "faults-" + b.unique + "-" + id, RpcBus: b.cfg}
	cfg.Topics.Request, cfg.Topics.Response = b.requests, b.responses
	if set != nil {
		set(&cfg)
	}
	return vtest.StartClient(t, cfg)
}

// requestTopic is the topic the bus's clients send target's requests to.
func (b *testBus) requestTopic() string { return b.requests + "." + target }

// cleanup runs a removal after a test, reporting its error.
func cleanup(t testing.TB, remove func(ctx context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := remove(ctx); err != nil {
		t.Errorf("cleanup: %v", err)
	}
}
