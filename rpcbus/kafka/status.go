package kafka

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

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

// Ping returns nil when a broker answers.
func (b *Bus) Ping(ctx context.Context) error {
	if b.open.Closed() {
		return rpcbus.ErrClosed
	}
	if err := b.prod.Ping(ctx); err != nil {
		return fmt.Errorf("kafka: no broker of %v answers: %w: %w", b.brokers, rpcbus.ErrUnavailable, err)
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
