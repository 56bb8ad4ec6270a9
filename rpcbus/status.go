package rpcbus

import "context"

// Pinger is implemented by buses that can check their connection: Ping
// returns nil when the bus's servers can be reached, and otherwise an error
// that wraps ErrUnavailable when they cannot be reached in time. A server's
// /readyz, /debug/vrpc and /metrics use it; buses without it are taken to
// be connected. Every bus vRPC ships implements it.
type Pinger interface {
	Ping(ctx context.Context) error
}

// PartitionStatus is one partition (or the backend's equivalent) of a
// subscription's topics.
type PartitionStatus struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Assigned is true when the partition is consumed by this
	// subscription, false when another member of the group holds it (or
	// nobody does).
	Assigned bool `json:"assigned"`
	// Committed is the group's committed position and End the position
	// the next message will take; -1 when unknown.
	Committed int64 `json:"committed"`
	End       int64 `json:"end"`
	// Lag is the messages of the partition the group has not yet been
	// served and acknowledged: End - Committed on buses with offsets
	// (Kafka), the bus's own count on the others (each backend's Status
	// says which). -1 when the bus cannot tell.
	Lag int64 `json:"lag"`
}

// SubscriptionStatus is what a StatusReporter says about a subscription.
type SubscriptionStatus struct {
	// Group is the consumer group; Member this subscription's id in it.
	Group  string `json:"group"`
	Member string `json:"member,omitempty"`
	// Partitions lists every partition of the subscription's topics,
	// sorted by topic and partition.
	Partitions []PartitionStatus `json:"partitions"`
}

// AssignedPartitions counts the partitions the subscription consumes.
func (s SubscriptionStatus) AssignedPartitions() int {
	n := 0
	for _, p := range s.Partitions {
		if p.Assigned {
			n++
		}
	}
	return n
}

// StatusReporter is implemented by subscriptions that can report their
// assignment and consumer lag. Status asks the bus, so it is for admin
// endpoints and metric scrapes, not for the hot path. The subscriptions of
// every bus vRPC ships implement it; on MQTT, whose brokers do not tell,
// every Lag is -1.
type StatusReporter interface {
	Status(ctx context.Context) (SubscriptionStatus, error)
}
