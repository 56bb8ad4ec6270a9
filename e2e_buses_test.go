package vrpc_test

import (
	"crypto/rand"
	"testing"

	"github.com/nextpkg/vrpc/internal/vtest"
	"github.com/nextpkg/vrpc/rpcbus"
)

// TestEndToEndBuses runs the end-to-end suite every bus passes over the
// buses that need no broker of the machine: an in-process Kafka and the
// memory bus. The packages of the other backends (rpcbus/nats, amqp, redis,
// mqtt) run the same suite on the machine's brokers.
func TestEndToEndBuses(t *testing.T) {
	for _, tc := range []struct {
		name     string
		bus      func(t *testing.T) rpcbus.Config
		security vtest.Security
	}{
		{"kafka", func(t *testing.T) rpcbus.Config { return vtest.StartKafka(t) }, vtest.Unsigned},
		{"memory", memoryBus, vtest.Unsigned},
		// Signed calls: every request and reply signed, or signed and
		// sealed (security in server.yaml and client.yaml).
		{"kafka-hmac", func(t *testing.T) rpcbus.Config { return vtest.StartKafka(t) }, vtest.HMAC},
		{"memory-ed25519-sealed", memoryBus, vtest.Ed25519Sealed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			vtest.RunEndToEnd(t, tc.bus(t), vtest.E2EOptions{Prefix: "e2e", Security: tc.security})
		})
	}
}

// memoryBus is a memory bus with a broker name of its own: the memory
// buses of the server and the clients share it, and nothing else does.
func memoryBus(*testing.T) rpcbus.Config {
	return rpcbus.Config{Type: "memory", Brokers: []string{"e2e-" + rand.Text()}}
}
