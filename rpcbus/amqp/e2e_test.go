package amqp_test

import (
	"testing"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/internal/vtest"
	"github.com/nextpkg/vrpc/rpcbus"
)

// e2eRun is the bus and options of a vtest run on the machine's RabbitMQ,
// on an exchange of its own. The servers declare a durable queue per
// target for their group, and the other subscriptions one per topic; the
// scope deletes them after the test.
func e2eRun(t *testing.T, prefix string) (rpcbus.Config, vtest.E2EOptions) {
	s := newScope(t)
	bus := rpcbus.Config{Type: "amqp", Brokers: []string{brokerAddr}, Settings: s.settings(nil)}
	return bus, vtest.E2EOptions{
		Prefix: unique(prefix),
		OnServer: func(cfg *vrpc.Config) {
			for target := range cfg.Targets {
				s.addQueue(cfg.Topics.Request + "." + target + ":" + cfg.Name)
			}
		},
		OnSubscribe: func(topics []string, group string) {
			for _, topic := range topics {
				s.addQueue(topic + ":" + group)
			}
		},
	}
}

// TestEndToEnd runs the end-to-end suite every bus passes over the
// machine's RabbitMQ. No group has a queue on the topic of an unknown
// target, so the broker returns the request and the client knows at once,
// not at its deadline (UnknownTarget).
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	bus, o := e2eRun(t, "e2e")
	vtest.RunEndToEnd(t, bus, o)
}

// TestAttacks runs the attacker's probes against a server that
// authenticates its clients, over the machine's RabbitMQ.
func TestAttacks(t *testing.T) {
	t.Parallel()
	bus, o := e2eRun(t, "atk")
	vtest.RunAttacks(t, bus, o)
}

// TestReplayAcrossRestart: a captured request published again after its
// server was replaced runs once, the servers sharing a Redis dedup store.
func TestReplayAcrossRestart(t *testing.T) {
	t.Parallel()
	bus, o := e2eRun(t, "replay")
	vtest.RunReplayAcrossRestart(t, bus, o, "127.0.0.1:6379")
}
