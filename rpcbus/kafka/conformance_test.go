package kafka_test

import (
	"testing"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/bustest"
	"github.com/nextpkg/vrpc/rpcbus/embedded"
	"github.com/nextpkg/vrpc/rpcbus/kafka"
)

// TestConformance runs the suite every backend passes, with every bus a
// client of one in-process broker of its own, as processes on one Kafka
// cluster. The Kafka bus claims every feature: unacknowledged deliveries go
// back to the group when their member leaves it, and with the default four
// partitions per topic a group spreads its work. TestMain checks for leaked
// goroutines.
func TestConformance(t *testing.T) {
	t.Parallel()
	cluster, err := embedded.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	bustest.Run(t, func(t *testing.T) rpcbus.Bus {
		b, err := kafka.New(rpcbus.Config{Type: "kafka", Brokers: []string{cluster.Addr()}, Settings: testSettings()})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}, bustest.Features{})
}
