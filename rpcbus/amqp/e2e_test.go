package amqp_test

import (
	"testing"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/internal/vtest"
	"github.com/nextpkg/vrpc/rpcbus"
)

// TestEndToEnd runs the end-to-end suite every bus passes over the
// machine's RabbitMQ, on an exchange of its own. No group has a queue on
// the topic of an unknown target, so the broker returns the request and the
// client knows at once, not at its deadline (UnknownTarget).
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	s := newScope(t)
	bus := rpcbus.Config{Type: "amqp", Brokers: []string{brokerAddr}, Settings: s.settings(nil)}
	vtest.RunEndToEnd(t, bus, vtest.E2EOptions{
		Prefix: unique("e2e"),
		// The server declares a durable queue per target for its group;
		// the scope deletes them after the test.
		OnServer: func(cfg *vrpc.Config) {
			for target := range cfg.Targets {
				s.addQueue(cfg.Topics.Request + "." + target + ":" + cfg.Name)
			}
		},
	})
}

// TestAttacks runs the attacker's probes against a server that
// authenticates its clients, over the machine's RabbitMQ.
func TestAttacks(t *testing.T) {
	t.Parallel()
	s := newScope(t)
	bus := rpcbus.Config{Type: "amqp", Brokers: []string{brokerAddr}, Settings: s.settings(nil)}
	vtest.RunAttacks(t, bus, vtest.E2EOptions{
		Prefix: unique("atk"),
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
	})
}

// TestReplayAcrossRestart: a captured request published again after its
// server was replaced runs once, the servers sharing a Redis dedup store.
func TestReplayAcrossRestart(t *testing.T) {
	t.Parallel()
	s := newScope(t)
	bus := rpcbus.Config{Type: "amqp", Brokers: []string{brokerAddr}, Settings: s.settings(nil)}
	vtest.RunReplayAcrossRestart(t, bus, vtest.E2EOptions{
		Prefix: unique("replay"),
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
	}, "127.0.0.1:6379")
}
