package amqp_test

import (
	"testing"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/bustest"
)

// TestConformance runs the suite every backend passes against the
// machine's RabbitMQ, each bus a client of its own as separate processes
// would be, all on one exchange of the test's. The AMQP bus claims every
// feature: a group's queue hands out messages round-robin to its consumers,
// one consumer receives a queue's messages in order, a publish no queue is
// bound to comes back, and the broker requeues what a consumer held
// unacknowledged as soon as its channel closes. TestMain checks for leaked
// goroutines.
func TestConformance(t *testing.T) {
	t.Parallel()
	s := newScope(t)
	// A new group is a new queue, which sees nothing published before it.
	bustest.Run(t, func(t *testing.T) rpcbus.Bus { return s.newBus(t, nil) }, bustest.Features{NoHistory: true})
}
