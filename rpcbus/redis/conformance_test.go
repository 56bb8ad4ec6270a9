package redis_test

import (
	"testing"
	"time"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/bustest"
	"github.com/nextpkg/vrpc/rpcbus/redis"
)

// TestConformance runs the suite every backend passes, every bus a client
// of the machine's Redis, as processes would be. The bus claims every
// feature but one: a member that closes hands its unacknowledged entries
// back to the group at once, but the members present claim them at their
// next XAUTOCLAIM pass, which comes within a second, hence
// RedeliveryTimeout. Streams detect unknown topics (XADD NOMKSTREAM), keep
// the order of a stream for its one reader, and spread work among the
// blocked readers of a group; Redis carries values up to 512 MiB, and the
// bus up to max_message_bytes (5 MiB). TestMain checks for leaked
// goroutines.
func TestConformance(t *testing.T) {
	t.Parallel()
	needRedis(t)
	bustest.Run(t, func(t *testing.T) rpcbus.Bus {
		b, err := redis.New(rpcbus.Config{Type: "redis", Brokers: []string{addr}, Settings: testSettings(nil)})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}, bustest.Features{RedeliveryTimeout: time.Second})
}
