package redis_test

import (
	"testing"

	"github.com/nextpkg/vrpc/internal/vtest"
	"github.com/nextpkg/vrpc/rpcbus"
)

// TestEndToEnd runs the end-to-end suite every bus passes over the
// machine's Redis. The request stream of an unknown target does not exist
// and the bus says so (XADD NOMKSTREAM): the caller learns it at once, not
// at its deadline (UnknownTarget).
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	needRedis(t)
	// A key prefix of its own: the test's streams are apart from every
	// other test's, and TestMain deletes them.
	bus := rpcbus.Config{Type: "redis", Brokers: []string{addr},
		Settings: testSettings(map[string]any{"key_prefix": runPrefix + "e2e:"})}
	vtest.RunEndToEnd(t, bus, vtest.E2EOptions{Prefix: "e2e"})
}

// TestAttacks runs the attacker's probes against a server that
// authenticates its clients, over the machine's Redis.
func TestAttacks(t *testing.T) {
	t.Parallel()
	needRedis(t)
	bus := rpcbus.Config{Type: "redis", Brokers: []string{addr},
		Settings: testSettings(map[string]any{"key_prefix": runPrefix + "atk:"})}
	vtest.RunAttacks(t, bus, vtest.E2EOptions{Prefix: "atk"})
}

// TestReplayAcrossRestart: a captured request published again after its
// server was replaced runs once, the servers sharing a Redis dedup store.
func TestReplayAcrossRestart(t *testing.T) {
	t.Parallel()
	needRedis(t)
	bus := rpcbus.Config{Type: "redis", Brokers: []string{addr},
		Settings: testSettings(map[string]any{"key_prefix": runPrefix + "replay:"})}
	vtest.RunReplayAcrossRestart(t, bus, vtest.E2EOptions{Prefix: "replay"}, addr)
}
