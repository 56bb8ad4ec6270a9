package mqtt_test

import (
	"testing"

	"github.com/nextpkg/vrpc/internal/vtest"
	"github.com/nextpkg/vrpc/rpcbus"
)

// TestEndToEnd runs the end-to-end suite every bus passes over the
// machine's Mosquitto, with topics and a server group of its own.
// Mosquitto answers a request to a topic nobody consumes with PUBACK reason
// code 0x10 (no matching subscribers), so a call to an unknown target fails
// at once with UNIMPLEMENTED (UnknownTarget); on a broker that does not
// send 0x10 the request would be dropped and the call would end at its
// deadline.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	needBroker(t)
	bus := rpcbus.Config{Type: "mqtt", Brokers: []string{brokerAddr}, Settings: testSettings()}
	vtest.RunEndToEnd(t, bus, vtest.E2EOptions{Prefix: name(t, "e2e")})
}

// TestAttacks runs the attacker's probes against a server that
// authenticates its clients, over the machine's Mosquitto.
func TestAttacks(t *testing.T) {
	t.Parallel()
	needBroker(t)
	bus := rpcbus.Config{Type: "mqtt", Brokers: []string{brokerAddr}, Settings: testSettings()}
	vtest.RunAttacks(t, bus, vtest.E2EOptions{Prefix: name(t, "atk")})
}

// TestReplayAcrossRestart: a captured request published again after its
// server was replaced runs once, the servers sharing a Redis dedup store.
func TestReplayAcrossRestart(t *testing.T) {
	t.Parallel()
	needBroker(t)
	bus := rpcbus.Config{Type: "mqtt", Brokers: []string{brokerAddr}, Settings: testSettings()}
	vtest.RunReplayAcrossRestart(t, bus, vtest.E2EOptions{Prefix: name(t, "replay")}, "127.0.0.1:6379")
}
