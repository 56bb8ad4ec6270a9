package rpcbus

import "context"

// TopicBacklog is how much of one topic a consumer group has yet to get
// through, as a BacklogReporter counts it.
type TopicBacklog struct {
	Topic string `json:"topic"`
	Group string `json:"group"`
	// Messages are the topic's messages the group has not yet
	// acknowledged: those waiting for a member, plus those delivered and
	// not yet acknowledged where the bus counts them (every bus but AMQP,
	// whose queue count leaves them out). -1 when the bus cannot tell;
	// Unknown then says why.
	Messages int64 `json:"messages"`
	// Unacknowledged are those of Messages delivered to a member and not
	// yet acknowledged. -1 when the bus does not count them apart from
	// the rest (Kafka: a committed offset does not say what was fetched)
	// or at all (AMQP, MQTT).
	Unacknowledged int64 `json:"unacknowledged"`
	// Unknown, when Messages is -1, says why the bus cannot tell: the
	// broker keeps no such count (MQTT), or the group has not consumed
	// the topic yet.
	Unknown string `json:"unknown,omitempty"`
}

// BacklogReporter is implemented by buses that can count what a consumer
// group has not yet consumed of its topics, whether or not any member of
// the group runs now. Backlog returns one TopicBacklog per topic, in the
// order given. It asks the brokers (a few requests per topic), so it is
// for admin endpoints and metric scrapes, not for the hot path; a server
// caches its answer for a few seconds. The error is for a bus that could
// not be asked (closed, unreachable); what the bus cannot know is a
// Messages of -1 with Unknown set. Every bus vRPC ships implements it.
type BacklogReporter interface {
	Backlog(ctx context.Context, group string, topics []string) ([]TopicBacklog, error)
}

// UnknownBacklog returns a backlog of topics that the bus cannot count,
// for the reason why.
func UnknownBacklog(group string, topics []string, why string) []TopicBacklog {
	out := make([]TopicBacklog, len(topics))
	for i, t := range topics {
		out[i] = TopicBacklog{Topic: t, Group: group, Messages: -1, Unacknowledged: -1, Unknown: why}
	}
	return out
}
