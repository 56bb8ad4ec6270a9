package nats_test

import (
	"testing"

	"github.com/nextpkg/vrpc/internal/vtest"
	"github.com/nextpkg/vrpc/rpcbus"
)

// TestEndToEnd runs the end-to-end suite every bus passes over the
// machine's NATS server. The request topic of an unknown target has no
// stream, so the client learns it at once from the publish, not from its
// deadline (UnknownTarget).
func TestEndToEnd(t *testing.T) {
	needServer(t)
	t.Parallel()
	// Names of this run only: the server's group, its request topics.
	prefix := name(t, "e2e")
	t.Cleanup(func() { deleteStreamsUnder(t, prefix) }) // after the server has stopped
	vtest.RunEndToEnd(t, rpcbus.Config{Type: "nats", Brokers: []string{serverAddr}}, vtest.E2EOptions{Prefix: prefix})
}

// TestAttacks runs the attacker's probes against a server that
// authenticates its clients, over the machine's NATS server.
func TestAttacks(t *testing.T) {
	needServer(t)
	t.Parallel()
	prefix := name(t, "atk")
	t.Cleanup(func() { deleteStreamsUnder(t, prefix) })
	vtest.RunAttacks(t, rpcbus.Config{Type: "nats", Brokers: []string{serverAddr}}, vtest.E2EOptions{Prefix: prefix})
}

// TestReplayAcrossRestart: a captured request published again after its
// server was replaced runs once, the servers sharing a Redis dedup store.
func TestReplayAcrossRestart(t *testing.T) {
	needServer(t)
	t.Parallel()
	prefix := name(t, "replay")
	t.Cleanup(func() { deleteStreamsUnder(t, prefix) })
	vtest.RunReplayAcrossRestart(t, rpcbus.Config{Type: "nats", Brokers: []string{serverAddr}}, vtest.E2EOptions{Prefix: prefix}, "127.0.0.1:6379")
}
