// Package redis carries vRPC over Redis Streams, with go-redis.
//
// Importing the package registers rpc_bus type redis: a client of one Redis
// server (rpc_bus.brokers, one address, default 127.0.0.1:6379; Redis
// Cluster and Sentinel are not supported). The address is host:port or a
// URL in go-redis's form, redis://[user:password@]host[:port][/db], or
// rediss:// for TLS: the URL's user, password and database override the
// username, password and db settings, and rediss:// turns TLS on. The
// password is redacted wherever the address is shown. It needs Redis 6.2 or later
// (XAUTOCLAIM, XADD NOMKSTREAM) and is tested on 7.0.
//
//	rpc_bus:
//	  type: redis
//	  brokers: [127.0.0.1:6379]
//	  settings: {db: 0, key_prefix: "vrpc:", max_len: 100000, claim_idle: 30s}
//
// rpc_bus.settings are decoded strictly (an unknown key is an error naming
// it):
//
//	key_prefix         starts every key the bus uses; default "vrpc:"
//	db                 database number; default 0
//	username, password ACL user and password (password alone: AUTH with
//	                   requirepass)
//	tls                true for TLS with the system's roots; implied by:
//	tls_ca_file        PEM file of the CAs to trust instead
//	tls_cert_file      PEM client certificate, with
//	tls_key_file       its PEM key
//	tls_server_name    name to verify; default the broker's host
//	tls_insecure_skip_verify  do not verify the server's certificate
//	                   (tests only)
//	max_len            entries a stream keeps, about (XADD MAXLEN ~); default
//	                   100000
//	max_message_bytes  largest message (key, value and headers); default
//	                   5 MiB (a 4 MiB gRPC payload plus its envelope), at
//	                   most 512 MiB, Redis's own limit
//	claim_idle         how long an entry stays pending with a consumer that
//	                   does not refresh it before another member takes it
//	                   over; default 30s
//	inbox_ttl          how long an inbox's stream outlives its process;
//	                   default 1m
//	block              longest wait of one blocking read; default 1s
//	dial_timeout       default 5s
//	pool_size          connections shared by Publish, acknowledgements and
//	                   the rest; default 10 per CPU (each subscription and
//	                   inbox has one more of its own, for blocking reads)
//
// # Topics and messages
//
// A topic is the stream at key_prefix+topic; a message is one entry, with
// its value in field "v", its key in "k" and each header in "h:<name>".
// Publish appends with XADD NOMKSTREAM, so a topic exists only once
// CreateTopics, Subscribe or Inbox has created its stream, and Publish to
// any other fails at once with rpcbus.ErrUnknownTopic: a vRPC client
// calling a target no server has declared gets UNIMPLEMENTED, not a
// deadline. XADD also trims the stream to about max_len entries. The XADDs
// of concurrent Publish calls, and the XACKs of subscriptions, go to Redis
// in pipelines, each carrying what queued while the previous one was on
// the wire; a caller waits for its own command only as long as its context
// allows.
//
// # Delivery
//
// A subscription is a consumer of the consumer group Group on each topic's
// stream; the group is created reading from the start of the stream, so
// requests published before the first server joined are served, or with
// SubscribeOptions.NewGroupMaxAge from the stream id of that long ago (the
// Redis server's clock; an existing group keeps its position). Each
// subscription reads all its topics on a connection of its own
// (XREADGROUP ... BLOCK, COUNT the free MaxInFlight slots shared among the
// topics, at least one each) and hands entries to its handler from one
// goroutine, in stream order, never more than MaxInFlight unacknowledged;
// what a read returns beyond that waits, pending for the subscription,
// until slots free up. Delivery.Ack queues an XACK, sent in a batch with
// the others queued meanwhile; a slot counts as in flight until its XACK is
// sent. The subscription's Status reports each stream's entries and the
// group's lag (rpcbus.StatusReporter), and the bus's Backlog a group's lag
// plus its pending entries, whether or not a member reads
// (rpcbus.BacklogReporter; unknown before Redis 7.0).
//
// Delivery is at least once; an entry is delivered again, to a member of
// the group present or future, when
//
//   - its member closes without acknowledging it: Close (and Bus.Close)
//     moves the member's pending entries, atomically in a Lua script, to a
//     consumer named vrpc:orphaned with an idle time of decades, deletes the
//     member's consumer, and ignores acknowledgements after that. Every
//     member runs XAUTOCLAIM at Subscribe and then every min(claim_idle/2,
//     1s), so entries handed back reach another member within about a
//     second (hence bustest.Features.RedeliveryTimeout);
//   - its member dies: the entries stay pending with its consumer, and are
//     claimed once idle for claim_idle;
//   - its member stalls for longer than claim_idle (a long pause, a network
//     partition): a live member claims its held entries for itself again
//     every claim_idle/3 (XCLAIM ... JUSTID), which resets their idle time,
//     so a slow handler keeps its entries, but a member that cannot do that
//     for claim_idle loses them to another, and both may handle them.
//
// A redelivered entry comes after the newer entries its new member has
// already received.
//
// # Ordering
//
// One member receives the entries of a stream in the order they were
// appended. Key chooses nothing (there are no partitions): the entries of
// one key go to whichever member of the group reads next, so several
// members may handle them at once and out of order.
//
// # Durability
//
// Publish returns once the entry is in the server's memory. Whether it
// survives a restart of Redis is the server's persistence setting (AOF,
// RDB snapshots); replication is asynchronous (the bus does not WAIT). A
// stream keeps about max_len entries whether or not a group has read them:
// a group that falls behind by more than that loses the oldest. If the
// server loses a stream or group (a restart without persistence, say),
// subscriptions create them again, empty, at their next read, and inboxes
// theirs as soon as their connection is back (within inbox_ttl/3 if it
// never broke); until then Publish to it fails with rpcbus.ErrUnknownTopic.
//
// # Inboxes
//
// Inbox gives each inbox an address of its own (the name, a dot and a
// random suffix) and creates its stream, empty, before returning; a
// connection of the inbox's own reads it from the start (XREAD ... BLOCK),
// so every message published to the address after Inbox returned reaches
// the handler, in order. Inboxes with one name (client instances sharing a
// client id) each have their own address. The stream expires inbox_ttl
// after its inbox last refreshed it (every inbox_ttl/3), so the address of
// a process that died vanishes; Close deletes it at once. Publish to an
// address that is gone fails with rpcbus.ErrUnknownTopic.
//
// # Connection loss
//
// go-redis reconnects by itself. The read loops back off (10ms to 1s)
// while the server cannot be reached and go on once it can. Publish waits
// no longer than its context allows, and fails with an error wrapping
// rpcbus.ErrUnavailable when the server could not be reached; Subscribe, Inbox and
// CreateTopics retry until their context ends. A server that refuses the
// password (WRONGPASS, NOAUTH) or, by its ACL, a command or key (NOPERM)
// fails them at once with an error wrapping rpcbus.ErrUnauthenticated or
// rpcbus.ErrForbidden. Close ends blocking reads
// with CLIENT UNBLOCK, or after a second (the server does not answer, or an
// ACL forbids CLIENT UNBLOCK) by closing their connection; a closing
// subscription's acknowledgements and hand-back get up to 5s more past the
// context of Close. What a closing member could not hand back is claimed
// after claim_idle, as if it had died.
//
// # Permissions
//
// With Redis ACLs the user needs XADD, XREADGROUP, XREAD, XACK, XAUTOCLAIM,
// XCLAIM, XPENDING, XGROUP, XINFO, EVAL and EVALSHA, MULTI and EXEC,
// PEXPIRE, DEL, PING, CLIENT ID and (optionally) CLIENT UNBLOCK, on the
// keys under key_prefix.
//
// # Conformance
//
// The bus passes bustest with Features{RedeliveryTimeout: time.Second}:
// see Delivery for why redelivery takes up to a second. It detects unknown
// topics, keeps stream order for a member, spreads work among the members
// of a group (Redis serves the blocked readers of a stream in turn) and
// carries messages of up to max_message_bytes.
package redis
