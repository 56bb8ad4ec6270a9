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
		name string
		bus  func(t *testing.T) rpcbus.Config
	}{
		{"kafka", func(t *testing.T) rpcbus.Config { return vtest.StartKafka(t) }},
		// A broker name of its own: the memory buses of the server and
		// the clients share it, and nothing else does.
		{"memory", func(*testing.T) rpcbus.Config {
			return rpcbus.Config{Type: "memory", Brokers: []string{"e2e-" + rand.Text()}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			vtest.RunEndToEnd(t, tc.bus(t), vtest.E2EOptions{Prefix: "e2e"})
		})
	}
}
