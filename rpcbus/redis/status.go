package redis

import (
	"context"
	"fmt"
	"sort"

	goredis "github.com/redis/go-redis/v9"

	"github.com/nextpkg/vrpc/rpcbus"
)

var _ rpcbus.StatusReporter = (*subscription)(nil)

// Status reports one partition per topic (a stream has no partitions),
// assigned to every member, as every member of the group reads the whole
// stream. End is the number of entries ever added to the stream, Committed
// the group's entries read less those pending (delivered and not yet
// acknowledged), and Lag their difference: entries not yet delivered plus
// those pending. Committed and Lag are -1 when Redis cannot tell (entries
// were deleted from the middle of the stream). It costs two commands per
// topic, in one pipeline.
func (s *subscription) Status(ctx context.Context) (rpcbus.SubscriptionStatus, error) {
	st := rpcbus.SubscriptionStatus{Group: s.group, Member: s.consumer}
	if s.closed.Load() {
		return st, rpcbus.ErrClosed
	}
	streams := make([]*goredis.XInfoStreamCmd, len(s.keys))
	groups := make([]*goredis.XInfoGroupsCmd, len(s.keys))
	_, err := s.bus.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, k := range s.keys {
			streams[i] = p.XInfoStream(ctx, k)
			groups[i] = p.XInfoGroups(ctx, k)
		}
		return nil
	})
	if err != nil {
		return st, wrap(err, "status of group %q on %q", s.group, s.topics)
	}
	for i, topic := range s.topics {
		ps := rpcbus.PartitionStatus{Topic: topic, Assigned: true, Committed: -1, End: streams[i].Val().EntriesAdded, Lag: -1}
		for _, g := range groups[i].Val() {
			if g.Name != s.group {
				continue
			}
			if g.Lag >= 0 {
				ps.Committed = g.EntriesRead - g.Pending
				ps.Lag = g.Lag + g.Pending
			}
			break
		}
		st.Partitions = append(st.Partitions, ps)
	}
	sort.Slice(st.Partitions, func(i, j int) bool { return st.Partitions[i].Topic < st.Partitions[j].Topic })
	if len(st.Partitions) == 0 {
		return st, fmt.Errorf("redis: status of group %q: no topics", s.group)
	}
	return st, nil
}
