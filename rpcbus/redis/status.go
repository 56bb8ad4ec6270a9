package redis

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

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

var _ rpcbus.BacklogReporter = (*Bus)(nil)

// Backlog reads XINFO GROUPS of each topic's stream, whether or not a
// member of the group reads it: Messages are the group's lag (entries not
// yet delivered to it) plus its pending entries (delivered and not yet
// acknowledged), Unacknowledged the latter. Redis counts both exactly,
// but gives no lag before Redis 7.0, nor when entries were deleted from
// the middle of the stream since the group last read: Messages is then
// unknown. A stream without the group is unknown too. It costs one
// command per topic, in one pipeline.
func (b *Bus) Backlog(ctx context.Context, group string, topics []string) ([]rpcbus.TopicBacklog, error) {
	if b.open.Closed() {
		return nil, rpcbus.ErrClosed
	}
	cmds := make([]*goredis.Cmd, len(topics))
	_, err := b.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, t := range topics {
			// Raw, not XInfoGroups: go-redis reads a missing lag (Redis
			// before 7.0) as 0, which would claim an empty backlog.
			cmds[i] = p.Do(ctx, "XINFO", "GROUPS", b.o.key(t))
		}
		return nil
	})
	out := make([]rpcbus.TopicBacklog, len(topics))
	for i, topic := range topics {
		tb := rpcbus.TopicBacklog{Topic: topic, Group: group, Messages: -1, Unacknowledged: -1}
		groups, cerr := cmds[i].Slice()
		switch {
		case cerr != nil && strings.Contains(cerr.Error(), "no such key"):
			tb.Unknown = "the topic has no stream"
		case cerr != nil:
			return nil, wrap(cerr, "backlog of group %q on %q", group, topic)
		default:
			tb.Unknown = "the group has never consumed the topic"
			for _, g := range groups {
				f := fields(g)
				if name, _ := f["name"].(string); name != group {
					continue
				}
				tb.Unknown = ""
				pending, _ := f["pending"].(int64)
				tb.Unacknowledged = pending
				switch lag, ok := f["lag"].(int64); {
				case !hasKey(f, "lag"):
					tb.Unknown = "Redis before 7.0 does not count a group's entries not yet delivered (XINFO GROUPS has no lag)"
				case !ok:
					tb.Unknown = "Redis cannot count the entries not yet delivered: entries were deleted from the middle of the stream"
				default:
					tb.Messages = lag + pending
				}
				break
			}
		}
		out[i] = tb
	}
	if err != nil && !errors.Is(err, goredis.Nil) && !strings.Contains(err.Error(), "no such key") {
		return nil, wrap(err, "backlog of group %q on %q", group, topics)
	}
	return out, nil
}

// fields reads one group of an XINFO GROUPS reply: a map in RESP3, a flat
// list of names and values in RESP2.
func fields(v any) map[string]any {
	switch v := v.(type) {
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			if ks, ok := k.(string); ok {
				out[ks] = x
			}
		}
		return out
	case []any:
		out := make(map[string]any, len(v)/2)
		for i := 0; i+1 < len(v); i += 2 {
			if ks, ok := v[i].(string); ok {
				out[ks] = v[i+1]
			}
		}
		return out
	}
	return nil
}

func hasKey(m map[string]any, k string) bool {
	_, ok := m[k]
	return ok
}
