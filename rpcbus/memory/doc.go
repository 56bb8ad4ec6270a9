// Package memory is an in-process rpcbus backend, for unit tests and for
// running a client and a server in one process without a broker.
//
// Import it for its side effect to make rpc_bus.type "memory" available:
//
//	import _ "github.com/nextpkg/vrpc/rpcbus/memory"
//
//	rpc_bus:
//	  type: memory
//	  brokers: [test-1]          # optional: the in-memory broker's name
//	  settings: {max_backlog: 1000, max_message_bytes: 1048576}
//
// # Brokers
//
// Buses built with the same brokers[0] in one process share one in-memory
// broker, so a client bus and a server bus see each other's topics, as they
// would on one Kafka cluster. Buses with different names are isolated. The
// broker lives as long as a bus uses it: when the last bus on a name closes,
// its topics, groups and messages are dropped, and the next bus with that
// name starts empty. Without brokers, a bus gets a private broker no other
// bus can reach. Only brokers[0] is used.
//
// # Topics, groups and retention
//
// The semantics follow the Kafka backend so that tests written against this
// bus mean something there:
//
//   - A topic must exist before Publish: CreateTopics or Subscribe creates
//     it; Publish to a missing topic fails with rpcbus.ErrUnknownTopic.
//   - Each consumer group receives every message of a topic once; within a
//     group each message goes to one member, whichever member is free
//     first. A new group starts at the oldest message the topic still keeps
//     (Kafka's reset to earliest), so messages published before the first
//     subscriber are served; with SubscribeOptions.NewGroupMaxAge, at the
//     first one published since that long ago (by publish time).
//   - A group outlives its members, as committed offsets do in Kafka: a
//     member that joins later resumes where the group stopped.
//     Subscriptions with an empty Group each get a private group that is
//     removed when the subscription closes.
//   - A delivery is done once acknowledged. A member that closes with
//     deliveries unacknowledged (its Close context expired) puts them back,
//     and another member of the group, present or future, receives them
//     again, before newer messages.
//   - A single member receives a topic's messages in publish order.
//
// Retention is one rule: a topic keeps a message until every group the
// topic has ever had has acknowledged it; a topic that has never had a
// group keeps every message. So a group that subscribes after the existing
// groups have acknowledged a message never sees it. Whatever the reason
// messages are kept, at most max_backlog of them are kept per topic, and
// Publish beyond that fails with ErrBacklogFull rather than growing memory.
//
// # Inboxes
//
// Inbox gives a private reply address (the name, a dot and a random
// suffix). Publish to it needs no CreateTopics; its messages go straight to
// the inbox's handler, in publish order, from one goroutine per inbox; at
// most max_backlog wait for the handler. After the inbox closes, Publish to
// its address fails with rpcbus.ErrUnknownTopic.
//
// # Messages
//
// Publish copies Key and Value, so the caller may reuse its buffers, and
// the Headers map. All deliveries of one message share the copied Key and
// Value: handlers must treat them as read-only. Each delivery has its own
// Headers map. Key chooses nothing: there are no partitions. A record's size
// (key, value, header names and values) may not exceed max_message_bytes.
//
// # Settings
//
// rpc_bus.settings is decoded strictly; an unknown key is an error:
//
//   - max_backlog: messages kept per topic, and waiting per inbox
//     (default 100000). Limits apply to the publishing bus.
//   - max_message_bytes: the largest record Publish accepts (default 5 MiB);
//     larger ones fail with rpcbus.ErrMessageTooLarge.
package memory
