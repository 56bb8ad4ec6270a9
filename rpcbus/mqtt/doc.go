// Package mqtt carries vRPC over an MQTT 5 broker (Mosquitto 2, EMQX,
// HiveMQ, ...), with paho.golang.
//
// Importing the package registers rpc_bus.type mqtt:
//
//	rpc_bus:
//	  type: mqtt
//	  brokers: [127.0.0.1:1883]      # tls://host:8883 for TLS; several are tried in turn
//	  settings:
//	    username: vrpc
//	    password: secret
//	    session_expiry: 5m
//
// A broker is host:port, or a URL: mqtt:// or tcp:// for plain TCP,
// mqtts://, ssl:// or tls:// for TLS, with optional user information
// (mqtts://user:password@host:8883) that replaces the username and
// password settings for that broker. The password is redacted wherever an
// address is shown.
//
// # Topics
//
// A vRPC topic name's '.'s become MQTT topic levels: vrpc.requests.demo is
// the MQTT topic vrpc/requests/demo, and deliveries carry the name back.
// Names may not contain '/', '+', '#' or start with '$'. Message.Key travels
// as the MQTT 5 Correlation Data, Message.Headers as User Properties (vRPC
// itself sends neither: its envelope carries the request id and the reply
// address, so the Response Topic property is not used either). The bus
// keeps its own bookkeeping under the topic root vrpc~ (a '~' cannot be
// part of a vRPC name), with retained messages; it never publishes a vRPC
// message retained.
//
// # Publishing
//
// Publish sends QoS 1 and returns once the broker has acknowledged the
// message (PUBACK), or ctx ends. MQTT has no topics that exist or not, but
// an MQTT 5 broker may answer a message nobody subscribes to with reason
// code 0x10 (No matching subscribers); Mosquitto does, and Publish then
// returns an error wrapping rpcbus.ErrUnknownTopic, so a call to a target
// no server has ever served fails at once with UNIMPLEMENTED. A topic counts
// as subscribed while any session subscribes it, connected or not: see
// "Groups". On a broker that does not send 0x10, such a message is dropped
// and the call ends with DEADLINE_EXCEEDED (that broker's tests would need
// bustest.Features.UnknownTopicNotDetected).
//
// # Groups
//
// A subscription is a member of its group: a shared subscription
// $share/<group>/<topic> with QoS 1, on a connection and a persistent
// session of its own (a random client id, session_expiry). The broker hands
// each message to one member; Mosquitto goes round-robin, whether or not a
// member has room, and queues what a member cannot take yet in its session.
// The session's Receive Maximum is the subscription's MaxInFlight, so the
// broker sends a member no more than that many unacknowledged messages; the
// PUBACK of a delivery is sent when Delivery.Ack is called (with the
// connection's next packet, or within a millisecond, so that PUBACKs share
// writes), in whatever order that happens (MQTT asks for the order of
// arrival, which would let a slow request hold back every later
// acknowledgement; brokers match PUBACKs by packet id).
//
// MQTT gives a session's unacknowledged messages back only to the session
// itself, when it resumes; Mosquitto gives them to no other member of a
// shared subscription. So members hand their sessions over:
//
//   - A member that closes (Subscription.Close, Bus.Close) stops delivering,
//     waits for acknowledgements as long as its context allows, then
//     publishes a marker, retained, on vrpc~/orphans/<group>/<client id>
//     (its subscriptions, in JSON) and disconnects, keeping its session with
//     everything it had not acknowledged, or not yet received.
//   - A member whose connection is lost without a DISCONNECT (a crash, a
//     network failure) has the broker publish the same marker as its will,
//     once will_delay has passed without it reconnecting; the broker sees the
//     loss at once when the socket closes, or after 1.5 keepalive when the
//     peer just vanishes.
//   - Every member subscribes the group's markers. On a marker, after a
//     short random pause, a member claims the session (a message on the same
//     topic, not retained, which keeps the others off it for 10s and which it
//     renews while it works), connects with the departed member's client id,
//     which resumes its session and makes the broker send every message in
//     it (again, with the DUP flag, those already sent once), removes its
//     subscriptions, and publishes to a sentinel topic of its own that it
//     subscribes in that session: the broker delivers in order, so once the
//     sentinel arrives and the handler has acknowledged everything before
//     it, the session is empty. The member then clears the marker and ends the session. If the
//     adopter closes first it hands the session back the same way; if it
//     dies, its will (the same marker) does.
//   - The session of the last member to leave, and its marker, stay for
//     session_expiry: requests published meanwhile wait in it, and the next
//     member to join the group adopts them, as a Kafka topic would keep
//     them. Messages still in a session when it expires are lost.
//     (Mosquitto 2.0 does not expire a retained will: a marker that outlives
//     its session is cleared by the next member that sees it, which finds
//     the session gone.)
//
// A message is so delivered at least once: again after its member left
// without acknowledging it (a member that closes with an expired context
// counts its deliveries as given back: acknowledgements after Close do
// nothing), or after a connection failure lost its PUBACK. A member that
// reconnects within will_delay resumes its own session and receives its
// unacknowledged messages again itself. Two members adopting one session at
// once (both claimed it in the same instant, or a member came back while
// its session was being adopted) take it from each other; what the loser
// had handed out is delivered again by the winner.
//
// Members need the broker's permission to connect with each other's client
// ids (client_id_prefix) and to use the topics under vrpc~/; a broker that
// ties client ids to user names (use_username_as_clientid) cannot hand
// sessions over.
//
// # Ordering, durability, payloads
//
// A member receives the messages of one publishing connection in the order
// they were published, keys being ignored: MQTT has no partitions, and a
// group's members receive the messages of one key in turn, so there is no
// per-key order across a group. Messages delivered again (after a
// reconnection or an adoption) come after newer ones. Durability is the
// broker's: Mosquitto keeps sessions and retained messages in memory and
// writes them to its persistence file every autosave_interval. Mosquitto
// holds at most max_queued_messages (default 1000) messages per session
// beyond those in flight and drops the rest silently; size it for the
// backlog a group may build. A payload may be up to max_message_bytes
// (default 5 MiB: a 4 MiB gRPC message and its envelope), and up to the
// broker's Maximum Packet Size if it announces one (Mosquitto's
// max_packet_size, unlimited by default; MQTT allows 256 MiB); Publish of a
// larger one fails with rpcbus.ErrMessageTooLarge. The bus announces
// max_message_bytes plus 64 KiB as its own Maximum Packet Size, and the
// broker drops larger messages for it.
//
// # Inboxes
//
// Inbox gives each inbox its own address: the name, a '.' and a random
// suffix, which the bus subscribes (QoS 1, not shared) on its publishing
// connection; Inbox returns once the broker has acknowledged the
// subscription. That connection's session ends with it: replies published
// while it reconnects are lost (their calls end with their deadline), and
// the inboxes are subscribed again on the next connection.
//
// # Connections
//
// A bus has one connection that publishes and holds the inboxes, opened on
// first use, and one per subscription. Each reconnects on its own when lost,
// with a backoff from 50ms doubling to reconnect_backoff_max, with jitter,
// trying the brokers in turn; a subscription resumes its session. While a
// connection is down, Publish, Subscribe, Inbox and Ping wait for it until
// their context ends, then fail with an error wrapping rpcbus.ErrUnavailable and
// the context's error (a vRPC call then ends with DEADLINE_EXCEEDED); a
// publish whose connection drops before its PUBACK is sent again on the next
// connection, so the broker may carry it twice. A CONNACK refusing the
// client (0x86 bad user name or password, 0x87 not authorized) ends the wait
// at once with an error wrapping rpcbus.ErrUnauthenticated, and a PUBACK or
// SUBACK 0x87 (the broker's ACL) fails with rpcbus.ErrForbidden.
//
// A connection has at most as many QoS 1 publishes awaiting their PUBACK
// as the broker's Receive Maximum (Mosquitto's max_inflight_messages,
// default 20); more wait their turn. Mosquitto leaves Nagle's algorithm on
// (set_tcp_nodelay false), and holds a small packet back while its previous
// one is unacknowledged: a client that delays its TCP acknowledgements would
// wait 40ms for a reply following a PUBACK. On Linux the bus acknowledges
// every read at once (TCP_QUICKACK). Setting set_tcp_nodelay true on the
// broker helps every client.
//
// # Settings
//
// rpc_bus.settings is decoded strictly; an unknown key is an error naming it:
//
//	client_id_prefix          of every client id the bus makes; default "vrpc-"
//	username, password        MQTT user name and password
//	tls                       true for TLS to every broker (also tls://,
//	                          ssl:// or mqtts:// before a broker's address,
//	                          or any tls_* key)
//	tls_ca_file               PEM CA certificates to check the broker's with;
//	                          default: the system's
//	tls_cert_file, tls_key_file  PEM client certificate and key
//	tls_server_name           name to check the broker's certificate for;
//	                          default: the broker's host
//	tls_insecure_skip_verify  do not check the broker's certificate
//	qos                       1, the only value: a request is acknowledged
//	                          once its reply is published (QoS 0 loses
//	                          requests; QoS 2's exactly-once needs client
//	                          state that outlives the process)
//	session_expiry            how long the broker keeps a member's session
//	                          (and its marker) after its connection ends;
//	                          default 5m, whole seconds
//	will_delay                how long a member's connection may be lost
//	                          before its session goes to the group; default
//	                          5s, whole seconds, at most session_expiry
//	keepalive                 MQTT keep alive; default 30s, whole seconds
//	connect_timeout           of each connection attempt, TLS and CONNACK
//	                          included; default 10s
//	reconnect_backoff_max     longest pause between attempts; default 5s
//	max_message_bytes         largest message Publish sends (key, value and
//	                          headers); default 5 MiB
//
// # Admin
//
// Ping, Addresses and a subscription's Status work as on the other buses,
// but MQTT has no consumer lag: a broker does not tell a client how many
// messages wait in a shared subscription or a session, so Status reports
// the group, the own session's client id and one entry per topic (assigned
// while connected) with Committed, End and Lag -1, and Backlog reports
// every topic as unknown, with that reason. Remove ends the sessions
// the last members of groups left for adoption and clears their markers.
//
// # Conformance
//
// The bus passes rpcbus/bustest on Mosquitto 2.0 with two Features flags,
// NoLag (see Admin) and NoHistory (a new group is a new shared
// subscription, which gets nothing published before it, so
// SubscribeOptions.NewGroupMaxAge has nothing to skip; no test is
// skipped): unacknowledged deliveries reach another member at
// once when theirs closes (RedeliveryTimeout 0; after a crash, after
// will_delay), Mosquitto spreads a group's messages over its members,
// answers a publish nobody subscribes to with 0x10, and carries 1 MiB.
package mqtt
