package vrpc_test

import (
	"net"
	"os"
	"testing"
	"time"

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

// TestReplayAcrossRestart: with a Redis dedup store, a captured request
// published again to the server that replaced the one that ran it does not
// run again.
func TestReplayAcrossRestart(t *testing.T) {
	const redisAddr = "127.0.0.1:6379"
	if c, err := net.DialTimeout("tcp", redisAddr, time.Second); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("Redis at %s: %v", redisAddr, err)
		}
		t.Skipf("no Redis at %s: %v", redisAddr, err)
	} else {
		c.Close()
	}
	for _, tc := range []struct {
		name string
		bus  func(t *testing.T) rpcbus.Config
	}{
		{"kafka", func(t *testing.T) rpcbus.Config { return vtest.StartKafka(t) }},
		{"memory", memoryBus},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			vtest.RunReplayAcrossRestart(t, tc.bus(t), vtest.E2EOptions{Prefix: "replay"}, redisAddr)
		})
	}
}
