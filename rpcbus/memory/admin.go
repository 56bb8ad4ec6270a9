package memory

import (
	"context"
	"slices"
	"strings"

	"github.com/nextpkg/vrpc/rpcbus"
)

var (
	_ rpcbus.Pinger         = (*Bus)(nil)
	_ rpcbus.Addresser      = (*Bus)(nil)
	_ rpcbus.StatusReporter = (*subscription)(nil)
)

// Ping returns nil until the bus is closed: the broker is in the process.
func (b *Bus) Ping(ctx context.Context) error {
	b.br.mu.Lock()
	closed := b.closed
	b.br.mu.Unlock()
	if closed {
		return rpcbus.ErrClosed
	}
	return ctx.Err()
}

// Addresses returns the broker's name, memory:<name>, or memory: for a
// private broker.
func (b *Bus) Addresses() []string { return []string{"memory:" + b.br.name} }

// Status reports one partition per topic, assigned to every member of the
// group (they share one log), with exact figures: End is the offset the
// next message will take, Committed the group's position (every offset
// below it is acknowledged), and Lag the messages from Committed on not yet
// acknowledged, whether waiting or handed out.
func (s *subscription) Status(ctx context.Context) (rpcbus.SubscriptionStatus, error) {
	st := rpcbus.SubscriptionStatus{Group: s.group}
	br := s.bus.br
	br.mu.Lock()
	defer br.mu.Unlock()
	if s.closing || s.bus.closed {
		return st, rpcbus.ErrClosed
	}
	for _, g := range s.groups {
		st.Partitions = append(st.Partitions, rpcbus.PartitionStatus{
			Topic:     g.t.name,
			Assigned:  true,
			Committed: g.committed,
			End:       g.t.end(),
			Lag:       g.t.end() - g.committed - int64(len(g.acked)),
		})
	}
	slices.SortFunc(st.Partitions, func(a, b rpcbus.PartitionStatus) int { return strings.Compare(a.Topic, b.Topic) })
	return st, ctx.Err()
}

var _ rpcbus.BacklogReporter = (*Bus)(nil)

// Backlog counts exactly, whether or not a member of the group runs:
// Messages are the records from the group's position on not yet
// acknowledged, waiting or handed out, and Unacknowledged those handed
// out to a member and neither acknowledged nor given back. A group that
// has never joined a topic has no position there, and its count is
// unknown.
func (b *Bus) Backlog(ctx context.Context, groupName string, topics []string) ([]rpcbus.TopicBacklog, error) {
	br := b.br
	br.mu.Lock()
	defer br.mu.Unlock()
	if b.closed {
		return nil, rpcbus.ErrClosed
	}
	out := make([]rpcbus.TopicBacklog, len(topics))
	for i, name := range topics {
		tb := rpcbus.TopicBacklog{Topic: name, Group: groupName, Messages: -1, Unacknowledged: -1}
		var g *group
		if t := br.topics[name]; t != nil {
			g = t.groups[groupName]
		}
		if g == nil {
			tb.Unknown = "the group has never consumed the topic"
		} else {
			acked := int64(len(g.acked))
			tb.Messages = g.t.end() - g.committed - acked
			tb.Unacknowledged = g.next - g.committed - acked - int64(len(g.redeliver))
		}
		out[i] = tb
	}
	return out, ctx.Err()
}
