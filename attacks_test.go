package vrpc_test

import (
	"testing"

	"github.com/nextpkg/vrpc/internal/vtest"
	"github.com/nextpkg/vrpc/rpcbus"
)

// TestAttacks runs the attacker's probes against a server that
// authenticates its clients over the in-process Kafka and the memory bus;
// the other backends' packages run them on the machine's brokers.
func TestAttacks(t *testing.T) {
	for _, tc := range []struct {
		name string
		bus  func(t *testing.T) rpcbus.Config
	}{
		{"kafka", func(t *testing.T) rpcbus.Config { return vtest.StartKafka(t) }},
		{"memory", memoryBus},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			vtest.RunAttacks(t, tc.bus(t), vtest.E2EOptions{Prefix: "atk"})
		})
	}
}
