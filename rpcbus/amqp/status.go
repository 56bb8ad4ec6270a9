package amqp

import (
	"context"
	"errors"
	"fmt"

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

var _ rpcbus.BacklogReporter = (*Bus)(nil)

// Backlog declares each topic's queue of the group passively, whether or
// not a member consumes it: Messages is the queue's message count, which
// in AMQP 0-9-1 (queue.declare-ok) counts the messages ready for delivery
// and leaves out those delivered and not yet acknowledged. The protocol
// has no count of those (RabbitMQ's management API has, over HTTP, which
// the bus does not use), so Unacknowledged is -1; a server's own are its
// in_flight. A topic whose queue of the group does not exist is unknown.
// It costs one channel and one declaration per topic.
func (b *Bus) Backlog(ctx context.Context, group string, topics []string) ([]rpcbus.TopicBacklog, error) {
	if b.open.Closed() {
		return nil, rpcbus.ErrClosed
	}
	out := make([]rpcbus.TopicBacklog, len(topics))
	for i, topic := range topics {
		tb := rpcbus.TopicBacklog{Topic: topic, Group: group, Messages: -1, Unacknowledged: -1}
		q := queueName(topic, group)
		err := b.withChannel(ctx, "backlog of queue "+q, func(ch *amqp.Channel) error {
			qi, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
			if err == nil {
				tb.Messages = int64(qi.Messages)
			}
			return err
		})
		var ae *amqp.Error
		switch {
		case errors.As(err, &ae) && ae.Code == amqp.NotFound:
			tb.Unknown = "the group has never consumed the topic (no queue " + q + ")"
		case err != nil:
			return nil, fmt.Errorf("amqp: backlog of group %q on %q: %w", group, topic, err)
		}
		out[i] = tb
	}
	return out, nil
}
