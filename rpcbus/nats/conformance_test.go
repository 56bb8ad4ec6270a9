package nats_test

import (
	"testing"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/bustest"
)

// TestConformance runs the suite every backend passes, with every bus a
// separate connection to the machine's NATS server, as separate processes
// would be. Features:
//
//   - MaxPayload: NATS refuses a message over the server's max_payload
//     (1 MiB unless configured otherwise), headers included, so a 1 MiB
//     value with its key's header does not fit; the suite's largest
//     payload runs only against a server configured for more.
//
// Nothing else is flagged: a member gives back what it holds when it
// closes (negative acknowledgements, so RedeliveryTimeout is zero), a
// member pulls in stream order, pull requests of the members of a group
// are served in turn, and Publish detects a topic without a stream.
func TestConformance(t *testing.T) {
	probe := newBus(t, nil)
	t.Parallel()
	bustest.Run(t, func(t *testing.T) rpcbus.Bus { return newBus(t, nil) },
		bustest.Features{MaxPayload: probe.MaxPayload()})
}
