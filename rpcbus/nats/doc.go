// Package nats carries vRPC over NATS: requests on JetStream, replies on
// core NATS. Clients publish requests to a topic per target; servers
// consume them as a group; each reply goes to the inbox of the client that
// asked.
//
// Import it for its side effect to make rpc_bus.type "nats" available (the
// package rpcbus/all does):
//
//	import _ "github.com/nextpkg/vrpc/rpcbus/nats"
//
//	rpc_bus:
//	  type: nats
//	  brokers: [nats://127.0.0.1:4222]   # default; tls://host:port for TLS
//	  settings:
//	    creds_file: /etc/vrpc/vrpc.creds
//	    ack_wait: 30s
//	    max_age: 24h
//
// The server must run JetStream (nats-server -js); the package is tested
// against NATS 2.9.
//
// # Settings
//
// rpc_bus.settings is decoded strictly: an unknown key, or a value of the
// wrong type or out of range, is an error naming the key.
//
//	token            authenticate with a token, or
//	user, password   with a user and password, or
//	creds_file       with a credentials file (JWT and NKey seed); a
//	                 server refusing them (Authorization Violation) makes
//	                 New fail at once with an error wrapping
//	                 rpcbus.ErrUnauthenticated; a publish the user's
//	                 permissions deny fails at once with rpcbus.ErrForbidden
//	                 (watched until a subject has taken a publish: a
//	                 permission revoked later, by a server reload, shows
//	                 only as the deadline)
//	tls              true for TLS with the system's CAs
//	tls_ca_file      PEM CA certificates that verify the server
//	tls_cert_file    PEM client certificate and key, for mutual TLS
//	tls_key_file
//	tls_server_name  the name to verify the server's certificate against
//	tls_insecure_skip_verify  do not verify the server's certificate (tests only)
//	connect_timeout  dial timeout; default 5s
//	reconnect_wait   the longest wait between reconnect attempts; default 2s
//	ack_wait         how long a delivery may go unacknowledged before the
//	                 server gives it to another member; default 30s
//	max_age          how long a stream this bus creates keeps a message
//	                 nobody consumes; default 24h, 0 for no limit
//	max_bytes        the size limit of such a stream; default -1, none
//	replicas         of such a stream, 1 to 5; default 1
//	storage          of such a stream, file (default) or memory
//
// Any tls_* setting turns TLS on; so does a tls:// broker address.
// Settings of streams and consumers apply when this bus creates them: a
// stream that exists keeps its own.
//
// # Requests
//
// Each request topic is a JetStream stream of its own, with the topic as
// its one subject, rather than one stream for all topics: so that Publish
// to a topic without a stream is refused by the server (no responders),
// which is how a client learns of an unknown target at once, and so that
// each topic has its own limits and can be removed alone. Stream names
// cannot hold '.', so a stream is named from its topic with '_' and a hash
// of the exact topic: "vrpc.requests.demo" is
// "vrpc_vrpc_requests_demo_<16 hex digits>". Topics are NATS subjects made
// of rpcbus.ValidName characters with no empty part between dots.
//
// Publish to a topic waits for the stream's acknowledgement: once it
// returns, the request is stored (on disk with the default file storage,
// on replicas servers). A topic no stream carries gives
// rpcbus.ErrUnknownTopic; Publish asks JetStream before saying so, so a
// stream that is only restarting or electing a leader is waited for
// instead.
//
// # Groups and delivery
//
// A group is a durable pull consumer of the topic's stream, named after
// the group ('.' becomes '_', plus a hash), with explicit
// acknowledgements; every subscription of the group, in any process, pulls
// from it, and the server hands each message to one of them, serving their
// pull requests in turn. A subscription without a group has a consumer of
// its own, deleted when it closes. A new consumer delivers from the start
// of the stream, or with SubscribeOptions.NewGroupMaxAge from the messages
// stored since that long ago (DeliverByStartTime); one that exists keeps
// the start it was created with, which JetStream does not let a member
// change.
//
// A member never holds more than SubscribeOptions.MaxInFlight deliveries:
// it asks the server for only as many messages as it has room for. The
// consumer's own MaxAckPending, which would bound the whole group, is
// unlimited, so that one stuck member cannot stall the others.
//
// Delivery is at least once. A server acknowledges a request after it has
// published the reply, on the same connection, so the NATS server sees the
// reply before the acknowledgement. A delivery not acknowledged within
// ack_wait is given to a member again; a member tells the server every
// third of ack_wait that it is still working on what it holds, so only a
// member that has died loses its deliveries that way, ack_wait after it
// last spoke. A member that closes (Subscription.Close with its context
// done, or Bus.Close) gives back what it holds unacknowledged at once,
// with negative acknowledgements, after unsubscribing and waiting two pull
// heartbeats (half a second): NATS 2.9 can lose a message given back while
// it still lists the departed member's pull request. Acknowledgements
// after a member closed do nothing.
//
// One member receives a topic's messages in the order the stream stored
// them, except that a message delivered again comes when it is given back.
// There is no ordering across members, and Message.Key chooses nothing:
// there are no partitions.
//
// # Retention
//
// Streams keep a message until every group of the topic has acknowledged
// it (JetStream's interest retention), so work done is removed at once.
// Such a stream drops what is published while it has no consumer at all,
// so CreateTopics gives a new topic a placeholder consumer, the keeper,
// which never reads: requests published before the first server subscribes
// are kept, and the first group to subscribe removes the keeper and
// receives them. A group outlives its members: a server that restarts
// finds what was published meanwhile. Whatever is never consumed leaves
// after max_age, or when max_bytes is reached, oldest first.
//
// # Inboxes
//
// An inbox is a core NATS subscription on a subject of its own,
// "_INBOX.vrpc.<name>.<unique id>" (under _INBOX, so that accounts already
// allowing reply inboxes allow it); Publish sends to such an address with
// core NATS. Each inbox has its own address, even when several share a
// name. Inbox returns once the server has registered the subscription.
//
// Core NATS delivers at most once: a reply is lost if the client's
// connection is down when it is published (its call then ends at its
// deadline), or if the inbox's handler falls 256 MiB behind. Publishing to
// an inbox address never fails for want of an inbox, since the server
// cannot tell (so the server of a client that has gone learns nothing).
// In a cluster, a reply published within moments of Inbox returning, on
// another server, can be missed while the subscription spreads.
//
// # Messages
//
// Value is the NATS payload; this package makes no copy of it. Key and Headers
// travel as NATS headers under a Vrpc- prefix, base64-encoded when NATS
// would not carry them unchanged; a message without them has no NATS
// headers. The largest message is the server's max_payload (1 MiB by
// default), headers included: Bus.MaxPayload is the largest Value with a
// short key. Publish refuses a larger one with rpcbus.ErrMessageTooLarge,
// so vRPC calls over 1 MiB need a server configured with a larger
// max_payload (NATS allows up to 64 MiB and advises at most 8 MiB).
//
// # Connection loss
//
// New does not wait for a server: when none answers yet, the bus starts
// disconnected and connects in the background, and CreateTopics, Subscribe
// and Inbox wait for it until their context ends (then failing with an
// error wrapping rpcbus.ErrUnavailable). A server that answers and refuses
// (credentials, TLS) fails New at once. Once connected, the bus reconnects for
// as long as it is open, retrying after 50ms, doubling up to
// reconnect_wait, with jitter. While the connection is down, a request's
// Publish waits until its context is done (30s without a deadline) and
// fails with its error: it never hangs past it, and the message, kept in
// nats.go's 8 MiB reconnect buffer, may still be sent after a reconnect.
// Replies and acknowledgements are buffered the same way. Subscriptions
// and inboxes resume on the new connection; members renew their pull
// requests at once. A dead connection without a TCP reset is noticed
// within a minute (a ping every 20s, the third unanswered one ends it).
//
// # Conformance
//
// The bus passes rpcbus/bustest with one Features flag: MaxPayload, set to
// Bus.MaxPayload, since the suite's 1 MiB value does not fit the default
// max_payload once its key's header is added. Per-key ordering,
// work spreading, unknown topics and redelivery at Close (RedeliveryTimeout
// zero) need no flag.
package nats
