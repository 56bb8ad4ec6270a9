package memory_test

import (
	"crypto/rand"
	"testing"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/bustest"
)

// TestConformance runs the suite every backend passes, with every bus on
// one named broker, as processes on one Kafka cluster. The memory bus
// claims every feature. TestMain checks for leaked goroutines.
func TestConformance(t *testing.T) {
	t.Parallel()
	brokers := []string{"bustest-" + rand.Text()}
	bustest.Run(t, func(t *testing.T) rpcbus.Bus { return newBus(t, brokers, nil) }, bustest.Features{})
}
