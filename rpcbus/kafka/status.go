package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/nextpkg/vrpc/internal/backoff"
	"github.com/nextpkg/vrpc/rpcbus"
)

var (
	_ rpcbus.Pinger         = (*Bus)(nil)
	_ rpcbus.Addresser      = (*Bus)(nil)
	_ rpcbus.StatusReporter = (*subscription)(nil)
)

// Addresses returns the brokers' addresses, redacted (the SASL user and
// password are settings, not part of them).
func (b *Bus) Addresses() []string { return rpcbus.RedactAddresses(b.brokers) }

// Ping returns nil when a broker answers. An error wraps rpcbus.ErrRefused
// when the brokers refuse the bus's credentials, and otherwise
// rpcbus.ErrUnavailable.
func (b *Bus) Ping(ctx context.Context) error {
	if b.open.Closed() {
		return rpcbus.ErrClosed
	}
	ctx, cancel := b.auth.guard(ctx)
	defer cancel()
	if err := cause(ctx, b.prod.Ping(ctx)); err != nil {
		if r := b.refusal(err, opDescribe, "", ""); r != nil {
			return fmt.Errorf("kafka: brokers %v: %w", rpcbus.RedactAddresses(b.brokers), r)
		}
		return fmt.Errorf("kafka: no broker of %v answers: %w: %w", rpcbus.RedactAddresses(b.brokers), rpcbus.ErrUnavailable, rpcbus.RedactError(err, b.brokers))
	}
	return nil
}

// Status reports the partitions of the subscription's topics, which of
// them the group gave this member, and the group's lag on each: the end
// offset less the committed one (less the start offset when nothing is
// committed yet). It costs a few admin requests to the brokers.
func (s *subscription) Status(ctx context.Context) (rpcbus.SubscriptionStatus, error) {
	group, _ := s.cl.OptValue(kgo.ConsumerGroup).(string)
	member, _ := s.cl.GroupMetadata()
	st := rpcbus.SubscriptionStatus{Group: group, Member: member}
	lags, err := s.bus.adm.Lag(ctx, group)
	if err != nil {
		return st, fmt.Errorf("kafka: lag of group %q: %w", group, err)
	}
	l, ok := lags[group]
	if !ok {
		return st, fmt.Errorf("kafka: lag of group %q: the brokers do not know the group", group)
	}
	if err := l.Error(); err != nil {
		return st, fmt.Errorf("kafka: lag of group %q: %w", group, err)
	}
	for _, pl := range l.Lag.Sorted() {
		ps := rpcbus.PartitionStatus{
			Topic:     pl.Topic,
			Partition: pl.Partition,
			Assigned:  pl.Member != nil && member != "" && pl.Member.MemberID == member,
			Committed: pl.Commit.At,
			End:       -1,
			Lag:       pl.Lag,
		}
		if pl.End.Err == nil {
			ps.End = pl.End.Offset
		}
		st.Partitions = append(st.Partitions, ps)
	}
	return st, nil
}

var _ rpcbus.GroupLister = (*Bus)(nil)

// ListGroups returns the consumer groups with a member that subscribes to
// topic or is assigned one of its partitions now, sorted. Groups without
// members (their servers stopped) are not listed, whatever offsets they
// committed. A group in a rebalance does not show what its members
// consume: ListGroups asks again until it is stable or ctx is done, and
// then lists it if it has committed offsets on topic.
func (b *Bus) ListGroups(ctx context.Context, topic string) ([]string, error) {
	if b.open.Closed() {
		return nil, rpcbus.ErrClosed
	}
	listed, err := b.adm.ListGroups(ctx)
	if err != nil {
		return nil, fmt.Errorf("kafka: listing the consumer groups: %w", err)
	}
	var groups []string
	names := listed.Groups()
	bo := backoff.New(backoff.Policy{Initial: 50 * time.Millisecond, Max: 500 * time.Millisecond})
	for len(names) > 0 {
		described, err := b.adm.DescribeGroups(ctx, names...)
		if err != nil {
			return nil, fmt.Errorf("kafka: describing the consumer groups: %w", err)
		}
		names = names[:0]
		for name, g := range described {
			switch {
			case g.Err != nil || g.ProtocolType != "consumer" || len(g.Members) == 0:
			case slices.ContainsFunc(g.Members, func(m kadm.DescribedGroupMember) bool { return consumes(m, topic) }):
				groups = append(groups, name)
			case g.State != "Stable":
				names = append(names, name)
			}
		}
		if len(names) > 0 && !bo.Wait(ctx) {
			break
		}
	}
	if len(names) > 0 && !errors.Is(ctx.Err(), context.Canceled) {
		// Still rebalancing when ctx ran out: go by their committed offsets.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
		defer cancel()
		for _, r := range b.adm.FetchManyOffsets(ctx, names...) {
			if r.Err == nil && len(r.Fetched[topic]) > 0 {
				groups = append(groups, r.Group)
			}
		}
	}
	slices.Sort(groups)
	return groups, nil
}

// consumes reports whether a group member subscribes to topic or is
// assigned a partition of it.
func consumes(m kadm.DescribedGroupMember, topic string) bool {
	if j, ok := m.Join.AsConsumer(); ok && slices.Contains(j.Topics, topic) {
		return true
	}
	if a, ok := m.Assigned.AsConsumer(); ok {
		return slices.ContainsFunc(a.Topics, func(t kmsg.ConsumerMemberAssignmentTopic) bool { return t.Topic == topic })
	}
	return false
}

var _ rpcbus.BacklogReporter = (*Bus)(nil)

// Backlog sums, over each topic's partitions, the end offset less the
// group's committed one: the records the group has not yet committed,
// which counts those fetched and not yet served too (Unacknowledged is
// -1: a commit does not say what was fetched). A partition where the
// group has committed nothing counts from its oldest record kept, where a
// group reading from the start begins; a server with max_request_age
// starts later, so it may read fewer. A topic where the group has
// committed nothing at all while no member of it runs is unknown: the
// group may never consume it. It costs three or four admin requests.
func (b *Bus) Backlog(ctx context.Context, group string, topics []string) ([]rpcbus.TopicBacklog, error) {
	if b.open.Closed() {
		return nil, rpcbus.ErrClosed
	}
	fail := func(what string, err error) error {
		return fmt.Errorf("kafka: backlog of group %q on %v: %s: %w", group, topics, what, rpcbus.RedactError(err, b.brokers))
	}
	ends, err := b.adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, fail("end offsets", err)
	}
	starts, err := b.adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return nil, fail("start offsets", err)
	}
	commits, err := b.adm.FetchOffsetsForTopics(ctx, group, topics...)
	if errors.Is(err, kerr.GroupIDNotFound) {
		// Some brokers say so of a group never seen; Kafka answers with
		// no offsets, which the member check below handles.
		return rpcbus.UnknownBacklog(group, topics, "the brokers know no such group: it has never consumed"), nil
	}
	if err != nil {
		return nil, fail("committed offsets", err)
	}
	out := make([]rpcbus.TopicBacklog, len(topics))
	var uncommitted []int // topics without any commit of the group
	for i, topic := range topics {
		tb := rpcbus.TopicBacklog{Topic: topic, Group: group, Messages: -1, Unacknowledged: -1}
		out[i] = tb
		parts := ends[topic]
		if len(parts) == 0 || parts[-1].Err != nil {
			out[i].Unknown = "the topic does not exist"
			continue
		}
		var sum int64
		committed := false
		for p, end := range parts {
			if end.Err != nil {
				out[i].Unknown = fmt.Sprintf("partition %d: end offset: %v", p, end.Err)
				break
			}
			from := int64(-1)
			if c, ok := commits.Lookup(topic, p); ok && c.Err == nil && c.At >= 0 {
				from, committed = c.At, true
			} else if s, ok := starts.Lookup(topic, p); ok && s.Err == nil {
				from = s.Offset
			}
			if from < 0 {
				out[i].Unknown = fmt.Sprintf("partition %d: neither a committed nor a start offset", p)
				break
			}
			sum += max(end.Offset-from, 0)
		}
		if out[i].Unknown != "" {
			continue
		}
		out[i].Messages = sum
		if !committed {
			uncommitted = append(uncommitted, i)
		}
	}
	if len(uncommitted) > 0 {
		described, err := b.adm.DescribeGroups(ctx, group)
		if err != nil {
			return nil, fail("describing the group", err)
		}
		g, ok := described[group]
		if !ok || g.Err != nil || len(g.Members) == 0 {
			for _, i := range uncommitted {
				out[i].Messages = -1
				out[i].Unknown = "the group has committed nothing on the topic and no member of it runs"
			}
		}
	}
	return out, nil
}
