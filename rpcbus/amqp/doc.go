// Package amqp carries vRPC over RabbitMQ (AMQP 0-9-1), with amqp091-go.
//
// Importing the package registers rpc_bus type amqp:
//
//	rpc_bus:
//	  type: amqp
//	  brokers: [rabbit-1:5672, rabbit-2:5672]
//	  settings: {vhost: /, username: vrpc, password: secret, queue_type: quorum}
//
// rpc_bus.brokers are host:port (default 127.0.0.1:5672; the port defaults
// to 5672, or 5671 with TLS) or AMQP URIs,
// amqp://user:password@host:port/vhost, or amqps:// for TLS (port 5671):
// a URI's user, password and vhost (percent-encoded: %2f is "/"; none, or
// an empty one, is the vhost setting) replace the settings for that
// broker, and amqps:// turns TLS on for it. URI parameters are not taken.
// The password is redacted wherever an address is shown. The bus connects
// to the first broker that answers.
// It takes these rpc_bus.settings:
//
//	vhost              virtual host; default /
//	username           default guest
//	password           default guest
//	auth_mechanism     plain (default: username and password) or external
//	                   (the client certificate, with RabbitMQ's
//	                   rabbitmq_auth_mechanism_ssl plugin)
//	tls                use TLS; implied by any other tls_ key
//	tls_ca_file        PEM CA certificates to verify the broker with
//	                   (default: the system's)
//	tls_cert_file      PEM client certificate, with tls_key_file
//	tls_key_file       PEM key of the client certificate
//	tls_server_name    name to verify the broker's certificate against
//	                   (default: the broker's host)
//	tls_insecure_skip_verify  do not verify the broker's certificate
//	exchange           the exchange every message goes through; default vrpc
//	queue_type         of the groups' queues: quorum (default) or classic,
//	                   for brokers older than 3.8 or where quorum queues'
//	                   fsync per batch costs too much
//	queue_expires      delete a group's queue once it has had no consumer
//	                   for this long, with what it holds (x-expires);
//	                   default 0, never
//	persistent         publish persistent messages, kept by durable queues
//	                   across broker restarts; default true
//	prefetch           basic.qos prefetch count of each queue a
//	                   subscription consumes; default 0, the subscription's
//	                   MaxInFlight (at most 65535)
//	max_message_bytes  largest message (key, value and headers); larger
//	                   ones fail with rpcbus.ErrMessageTooLarge before they
//	                   are sent. Default 16 MiB; keep it within the broker's
//	                   max_message_size (128 MiB before RabbitMQ 4.0,
//	                   16 MiB since)
//	heartbeat          AMQP heartbeat interval; default 10s. A connection
//	                   silent for about two of them is taken as lost
//	dial_timeout       bounds TCP, TLS and AMQP handshakes; default 10s
//	confirm_timeout    longest wait for a publisher confirm when the
//	                   caller's context allows more; default 30s
//	reconnect_backoff  longest pause between reconnection attempts
//	                   (doubling from 50ms); default 5s
//	connection_name    shown in the broker's connection list, with
//	                   " (publish)" or " (consume)"; default vrpc
//
// An unknown key, a value of the wrong type or out of range, or a TLS file
// that cannot be read is an error naming the key, when the bus is made.
//
// # Topology
//
// Every message is published to one durable direct exchange (the exchange
// setting) with its topic as routing key, mandatory, on a channel in
// confirm mode.
//
//   - A subscription of group G to topic T declares the durable queue
//     "T:G" (':' is not allowed in vRPC names, so no two pairs meet) and
//     binds it to the exchange with key T. All members of G, in any
//     process, consume that one queue: the broker gives each message to one
//     of them, round-robin within the prefetch window. Every group has its
//     own queue, so each group gets every message.
//   - An inbox is an exclusive, auto-delete classic queue with a unique
//     name, "<name>.<12 random characters>", which is also its address:
//     bound with that key, replies reach exactly the inbox that sent the
//     request, even when processes share a client id. It is not RabbitMQ's
//     direct reply-to: that pseudo-queue only rewrites the reply_to property
//     of messages published on the consuming channel, and has no address
//     before a publish, while vRPC carries the reply address in its
//     envelope, opens the inbox before any request and publishes from a
//     shared channel; replies to a vanished direct reply-to consumer are
//     also dropped silently, where a gone inbox queue makes the publisher's
//     Publish fail.
//   - A topic exists once a queue is bound to it. Publish to a topic no queue
//     is bound to (no group has ever subscribed, or the inbox is gone) is
//     returned by the broker, and Publish fails with rpcbus.ErrUnknownTopic,
//     so a vRPC client learns of an unknown target at once (UNIMPLEMENTED).
//     CreateTopics only declares the exchange: a request published before
//     the first server of a target has subscribed is refused, not kept. A
//     group's queue outlives its members, so requests published while all
//     of them are down wait for them in it (until queue_expires, if set).
//     For the same reason vserver's dead letters (<topic>.dlq) are kept only
//     once some group subscribes to that topic; until then the server logs
//     them as dropped.
//
// # Guarantees
//
// Delivery is at least once. Publish returns once the broker has confirmed
// the message: for a quorum queue, once a majority of its replicas have
// written it; for a durable classic queue and a persistent message, once it
// is on disk. A subscription acknowledges a delivery only when its handler
// calls Ack; a message not acknowledged when its consumer's channel closes
// (Subscription.Close, Bus.Close, a lost connection, a crashed process) is
// put back in the queue by the broker at once and given to another member
// of the group (Features.RedeliveryTimeout is zero). Acknowledgements made
// after that do nothing. Quorum queues of RabbitMQ 4.0 and later give up on
// a message after 20 returns unless a delivery-limit policy says otherwise.
//
// Ordering: one consumer receives a queue's messages in the order one bus
// published them (one channel per bus), keys interleaved, except for
// messages delivered again. Message.Key is carried (in the x-vrpc-key
// header) but does not choose a consumer: with several members in a group,
// messages of one key go to any of them.
//
// Durability: groups' queues are durable, and with persistent (the
// default) their messages survive a broker restart; quorum queues are
// replicated on a cluster. Inbox queues are not durable: they belong to a
// connection.
//
// Payload: up to max_message_bytes (default 16 MiB).
//
// Back-pressure: at most SubscribeOptions.MaxInFlight deliveries are
// unacknowledged per subscription. The broker's prefetch is MaxInFlight per
// queue; with several topics the subscription holds back what exceeds
// MaxInFlight in total until acknowledgements make room.
//
// # Connection loss
//
// The bus keeps two connections, one to publish and one to consume (as
// RabbitMQ advises: a blocked publisher must not hold up acknowledgements),
// and dials again with backoff whenever one is lost, trying the brokers in
// turn. Subscriptions and inboxes open their channels again, declare their
// queues again and go on consuming; an inbox keeps its address, but replies
// published while it was gone are lost (their publishers got
// rpcbus.ErrUnknownTopic, their callers time out). While a connection is
// down, Publish, Subscribe, Inbox, CreateTopics and Ping wait for it until
// their context ends, then fail with an error wrapping rpcbus.ErrUnavailable,
// the context's error and the last connection failure; a publish whose
// channel closes before the broker confirmed it fails at once with
// rpcbus.ErrUnavailable (the message may or may not have been taken: vRPC's
// request ids make a retry safe). Every publish goes through one writer
// goroutine, so a broker that stops reading (a resource alarm) never holds
// a caller past its context. A broker that refuses the login (403
// ACCESS_REFUSED: user or password; no access to the vhost) ends the wait
// at once with an error wrapping rpcbus.ErrUnauthenticated or
// rpcbus.ErrForbidden that names the settings and the rabbitmqctl command.
//
// # Status
//
// The bus implements rpcbus.Pinger (both connections open) and its
// subscriptions rpcbus.StatusReporter: one entry per topic, assigned while
// the subscription consumes the group's queue, with the messages waiting
// in it as lag. The bus is an rpcbus.BacklogReporter: a group's backlog is
// its queues' counts of ready messages (AMQP does not report those
// delivered and not yet acknowledged), whether or not a member consumes.
//
// # Conformance
//
// The bus passes rpcbus/bustest with Features{NoHistory: true}, which
// skips no test: a new group is a new queue, which gets nothing published
// before it was bound, so SubscribeOptions.NewGroupMaxAge has nothing to
// skip. It keeps per-key order for one consumer, a group spreads work
// round-robin, Publish detects unknown topics, the broker requeues at once
// what a closing member held, and it carries payloads of 1 MiB and more.
package amqp
