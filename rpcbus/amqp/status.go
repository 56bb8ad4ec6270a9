package amqp

import (
	"context"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/nextpkg/vrpc/rpcbus"
)

var _ rpcbus.StatusReporter = (*subscription)(nil)

// Status reports one "partition" per topic: the group's queue on it.
// Assigned is whether the subscription is consuming it now (false while
// it reconnects), and Lag the messages waiting in the queue, not counting
// those delivered and not yet acknowledged; Committed and End are -1, as
// queues have no offsets. It asks the broker, with a passive declaration
// of each queue.
func (s *subscription) Status(ctx context.Context) (rpcbus.SubscriptionStatus, error) {
	st := rpcbus.SubscriptionStatus{Group: s.group}
	if s.closed.Load() {
		return st, rpcbus.ErrClosed
	}
	lag := make([]int64, len(s.queues))
	for i := range lag {
		lag[i] = -1
	}
	err := s.bus.withChannel(ctx, "inspecting the queues of group "+s.group, func(ch *amqp.Channel) error {
		for i, q := range s.queues {
			qi, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
			if err != nil {
				return err
			}
			lag[i] = int64(qi.Messages)
		}
		return nil
	})
	consuming := s.consuming.Load()
	for i, t := range s.topics {
		st.Partitions = append(st.Partitions, rpcbus.PartitionStatus{
			Topic: t, Assigned: consuming, Committed: -1, End: -1, Lag: lag[i],
		})
	}
	return st, err
}
