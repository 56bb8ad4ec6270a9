package nats

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nextpkg/vrpc/rpcbus"
)

var (
	_ rpcbus.Pinger         = (*Bus)(nil)
	_ rpcbus.Addresser      = (*Bus)(nil)
	_ rpcbus.Remover        = (*Bus)(nil)
	_ rpcbus.StatusReporter = (*subscription)(nil)
)

// Ping returns nil when the server answers a round trip (a flush) within
// ctx. While the connection is down the error wraps rpcbus.ErrUnavailable.
func (b *Bus) Ping(ctx context.Context) error {
	if b.open.Closed() {
		return rpcbus.ErrClosed
	}
	if err := b.flush(ctx); err != nil {
		return fmt.Errorf("nats: ping %s: %w", strings.Join(b.Addresses(), ", "), err)
	}
	return nil
}

// Addresses returns the URL of the server the bus is connected to, then the
// other servers it was given, with passwords and tokens redacted.
func (b *Bus) Addresses() []string {
	addrs := rpcbus.RedactAddresses(b.servers)
	// Not ConnectedUrlRedacted: it keeps a token given as the user of the
	// URL (nats://token@host).
	if u := rpcbus.RedactAddress(b.nc.ConnectedUrl()); u != "" {
		addrs = slices.DeleteFunc(addrs, func(a string) bool { return hostPort(a) == hostPort(u) })
		addrs = append([]string{u}, addrs...)
	}
	return addrs
}

// hostPort strips a server address's scheme and user information, and
// adds NATS's port if it has none.
func hostPort(addr string) string {
	if _, rest, ok := strings.Cut(addr, "://"); ok {
		addr = rest
	}
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		addr = addr[i+1:]
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, "4222")
	}
	return addr
}

// Status reports one "partition" per topic: the group's durable consumer
// on the topic's stream, assigned to every member (they all pull from it).
// Lag is the consumer's messages not yet delivered plus those delivered
// and not yet acknowledged, group-wide; Committed is its acknowledgement
// floor (every stream sequence up to it is acknowledged) and End the
// stream's next sequence. It costs two JetStream API requests per topic.
func (s *subscription) Status(ctx context.Context) (rpcbus.SubscriptionStatus, error) {
	st := rpcbus.SubscriptionStatus{Group: s.group}
	if s.bus.open.Closed() {
		return st, rpcbus.ErrClosed
	}
	var errs []error
	for _, t := range s.targets {
		ps := rpcbus.PartitionStatus{Topic: t.topic, Assigned: true, Committed: -1, End: -1, Lag: -1}
		if c, err := s.bus.js.Consumer(ctx, t.stream, t.consumer); err != nil {
			errs = append(errs, fmt.Errorf("consumer %s on stream %s: %w", t.consumer, t.stream, s.bus.jsErr(err)))
		} else {
			ci := c.CachedInfo()
			ps.Committed = int64(ci.AckFloor.Stream)
			ps.Lag = int64(ci.NumPending) + int64(ci.NumAckPending)
		}
		if str, err := s.bus.js.Stream(ctx, t.stream); err != nil {
			errs = append(errs, fmt.Errorf("stream %s: %w", t.stream, s.bus.jsErr(err)))
		} else {
			ps.End = int64(str.CachedInfo().State.LastSeq) + 1
		}
		st.Partitions = append(st.Partitions, ps)
	}
	slices.SortFunc(st.Partitions, func(a, b rpcbus.PartitionStatus) int { return strings.Compare(a.Topic, b.Topic) })
	if err := errors.Join(errs...); err != nil {
		return st, fmt.Errorf("nats: status of group %q: %w", s.group, err)
	}
	return st, nil
}

// Remove deletes the JetStream streams of l.Topics and, with l.Prefix, of
// every topic under it (streams this package made, whose subjects start
// with the prefix); the groups' consumers go with their streams.
func (b *Bus) Remove(ctx context.Context, l rpcbus.Leftovers) error {
	if b.open.Closed() {
		return rpcbus.ErrClosed
	}
	streams := make([]string, 0, len(l.Topics))
	for _, t := range l.Topics {
		streams = append(streams, streamName(t))
	}
	var errs []error
	if l.Prefix != "" {
		// A subject filter matches whole tokens only: list under the
		// prefix's last full token and compare the subjects themselves.
		filter := ">"
		if i := strings.LastIndexByte(l.Prefix, '.'); i >= 0 {
			filter = l.Prefix[:i+1] + ">"
		}
		list := b.js.ListStreams(ctx, jetstream.WithStreamListSubject(filter))
		for si := range list.Info() {
			if strings.HasPrefix(si.Config.Name, "vrpc_") &&
				slices.ContainsFunc(si.Config.Subjects, func(s string) bool { return strings.HasPrefix(s, l.Prefix) }) {
				streams = append(streams, si.Config.Name)
			}
		}
		if err := list.Err(); err != nil {
			errs = append(errs, fmt.Errorf("listing the streams under %q: %w", l.Prefix, b.jsErr(err)))
		}
	}
	slices.Sort(streams)
	for _, name := range slices.Compact(streams) {
		if err := b.js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			errs = append(errs, fmt.Errorf("stream %s: %w", name, b.jsErr(err)))
		}
	}
	// The bus must make sure of these streams again before using them.
	b.known.Range(func(k, _ any) bool {
		if t := k.(string); slices.Contains(l.Topics, t) || l.Prefix != "" && strings.HasPrefix(t, l.Prefix) {
			b.known.Delete(t)
		}
		return true
	})
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("nats: remove: %w", err)
	}
	return nil
}

var _ rpcbus.GroupLister = (*Bus)(nil)

// ListGroups returns the groups whose durable consumer on topic's stream
// has a member pulling (a pull request waiting) or deliveries not yet
// acknowledged, sorted. The group is read from the consumer's
// description, which Subscribe writes.
func (b *Bus) ListGroups(ctx context.Context, topic string) ([]string, error) {
	if b.open.Closed() {
		return nil, rpcbus.ErrClosed
	}
	str, err := b.js.Stream(ctx, streamName(topic))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("nats: groups of topic %q: %w", topic, b.jsErr(err))
	}
	var groups []string
	list := str.ListConsumers(ctx)
	for ci := range list.Info() {
		var group, on string
		if ci.Config.Durable == "" || ci.Name == keeperName ||
			groupOf(ci.Config.Description, &group, &on) != nil || ci.NumWaiting == 0 && ci.NumAckPending == 0 {
			continue
		}
		groups = append(groups, group)
	}
	if err := list.Err(); err != nil {
		return nil, fmt.Errorf("nats: groups of topic %q: %w", topic, b.jsErr(err))
	}
	slices.Sort(groups)
	return slices.Compact(groups), nil
}

// groupOf reads the group and topic from a consumer's description.
func groupOf(description string, group, topic *string) error {
	_, err := fmt.Sscanf(description, "vRPC group %q on topic %q", group, topic)
	return err
}

var _ rpcbus.BacklogReporter = (*Bus)(nil)

// Backlog reads the group's durable consumer on each topic's stream,
// whether or not a member pulls from it: Messages are its messages not yet
// delivered (num_pending) plus those delivered and not yet acknowledged
// (num_ack_pending), Unacknowledged the latter. Both are exact, counted
// by the server. A topic without a stream, or whose stream has no
// consumer of the group, is unknown. It costs one JetStream API request
// per topic.
func (b *Bus) Backlog(ctx context.Context, group string, topics []string) ([]rpcbus.TopicBacklog, error) {
	if b.open.Closed() {
		return nil, rpcbus.ErrClosed
	}
	out := make([]rpcbus.TopicBacklog, len(topics))
	consumer := consumerName(group)
	for i, topic := range topics {
		tb := rpcbus.TopicBacklog{Topic: topic, Group: group, Messages: -1, Unacknowledged: -1}
		c, err := b.js.Consumer(ctx, streamName(topic), consumer)
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
			tb.Unknown = "the topic has no stream"
		case errors.Is(err, jetstream.ErrConsumerNotFound):
			tb.Unknown = "the group has never consumed the topic (no durable consumer " + consumer + ")"
		case err != nil:
			return nil, fmt.Errorf("nats: backlog of group %q on %q: consumer %s on stream %s: %w", group, topic, consumer, streamName(topic), b.jsErr(err))
		default:
			ci := c.CachedInfo()
			tb.Messages = int64(ci.NumPending) + int64(ci.NumAckPending)
			tb.Unacknowledged = int64(ci.NumAckPending)
		}
		out[i] = tb
	}
	return out, nil
}
