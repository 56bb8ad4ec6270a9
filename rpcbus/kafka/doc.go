// Package kafka carries vRPC over Apache Kafka, with franz-go.
//
// Importing the package registers rpc_bus.type kafka: a client of Kafka
// brokers (rpc_bus.brokers, default 127.0.0.1:9092). The in-process broker
// of rpc_bus.type embedded lives in package
// github.com/nextpkg/vrpc/rpcbus/embedded, so that a program using Kafka
// does not link one; it takes the same settings.
//
// Type kafka takes these rpc_bus.settings:
//
//	compression         none (default), gzip, snappy, lz4 or zstd
//	batch_size          bytes; see below
//	linger              how long the producer waits to fill a batch; default 0
//	acks                all (default), leader or none
//	partitions          of the topics this bus creates; default 4
//	replication_factor  of the topics this bus creates; default -1, the broker's
//	max_message_bytes   largest record; default 5 MiB (a 4 MiB gRPC payload
//	                    plus its envelope); also max.message.bytes of the
//	                    topics this bus creates
//	dial_timeout        default 10s
//	session_timeout     of group members; default 45s
//	heartbeat_interval  of group members; default 3s
//	revoke_timeout      how long a member losing partitions waits for their
//	                    deliveries to be acknowledged; default 10s
//	fetch_max_wait      how long a fetch waits for records; default 500ms.
//	                    A fetch returns as soon as a record arrives, but
//	                    partitions a member gains in a rebalance join its
//	                    fetches only when the one in flight returns: on a
//	                    quiet topic their messages wait up to this long
//	delivery_timeout    how long a record is retried while the brokers cannot
//	                    take it, after which it fails (and with it the records
//	                    behind it on its partition); default 1m
//	reply_retention     retention.ms of the reply topics inboxes create: the
//	                    replies of a client that died without closing its
//	                    inbox are deleted after that long; default 1h
//	sasl_mechanism      PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; default PLAIN
//	                    when a username is set
//	username, password  the SASL credentials
//	tls                 true to dial the brokers with TLS; any tls_* key
//	                    turns it on too
//	tls_ca_file         PEM CAs to trust instead of the system's
//	tls_cert_file,      a PEM client certificate and its key, for brokers
//	tls_key_file        that ask for one
//	tls_server_name     the name to verify the brokers' certificates against
//	tls_insecure_skip_verify  accept any certificate (tests only)
//
// # Batches
//
// franz-go's batch cap (kgo.ProducerBatchMaxBytes) is also the largest record
// it will send: a record larger than the cap fails at once with
// MESSAGE_TOO_LARGE, where Kafka's Java producer sends a record larger than
// batch.size in a batch of its own. The cap must also stay within the topics'
// max.message.bytes, or the broker refuses whole batches. So the producer's
// cap is max_message_bytes, and batch_size, accepted for compatibility with
// Java-style configurations (the seed's batch_size: 100 included), may be at
// most max_message_bytes and never makes the producer refuse a record that
// max_message_bytes allows. With linger 0 a batch is whatever accumulated
// while the previous request to the broker was in flight.
//
// # Delivery
//
// Subscriptions are consumer groups. A message is delivered at least once:
// offsets are committed only up to the first delivery not yet acknowledged
// (the contiguous acknowledged prefix of each partition), so after a member
// closes or fails, its successor receives every message from that first
// unacknowledged one on, including any acknowledged after it. A member losing
// partitions in a rebalance waits up to revoke_timeout for their deliveries to
// be acknowledged and commits before letting the rebalance go on. Groups
// rebalance cooperatively: a new member gets its partitions within about two
// heartbeat_intervals. A group without a committed offset (or whose
// committed offset the brokers no longer keep) starts at the oldest
// message, or with SubscribeOptions.NewGroupMaxAge at the offset of the
// first message whose timestamp is at most that old.
//
// A message without a key goes to a new partition with each new batch, which
// spreads requests over the members of a group (franz-go's default would
// send 64 KiB of them to one partition first); a keyed one goes by the hash of
// its key, as with Kafka's own clients.
//
// An inbox has a topic of its own: its name, a dot and a random suffix,
// created with retention.ms of reply_retention. It reads every partition of
// it directly, without a group, from the end offsets it found when it was
// opened: it sees every message published after Inbox returned. Inboxes
// with one name (client instances sharing a client id) each have their
// own topic. Close deletes the topic (so does Bus.Close, for the inboxes
// still open). The topic of a process that died stays, and the brokers
// delete its replies after reply_retention; an open inbox writes a
// keepalive record (which it does not deliver) to its topic every
// reply_retention/4, and each new inbox deletes the topics of its name
// that have had none for reply_retention. So a client that crashes and
// comes back with the same client id removes what it left; the topics of
// a client id that never comes back stay, empty, until removed with
// Kafka's tools. An inbox whose process could not reach the brokers for
// reply_retention may have its topic deleted as dead by another instance
// of its client id: keep reply_retention well above such outages.
//
// # Refusals
//
// Operations fail within seconds, with an error wrapping rpcbus.ErrRefused
// that names the fix, when the brokers refuse the bus: wrong SASL
// credentials (rpcbus.ErrUnauthenticated; whether the broker answers
// SASL_AUTHENTICATION_FAILED, as Kafka does, or closes the connection twice
// in a row in answer to the credentials, as kfake does, which franz-go alone
// would retry until the deadline), a missing ACL (rpcbus.ErrForbidden:
// TOPIC_, GROUP_ or CLUSTER_AUTHORIZATION_FAILED, with the kafka-acls.sh
// command to run), or a topic the brokers refuse to create as configured
// (INVALID_REPLICATION_FACTOR when replication_factor is larger than the
// live brokers, a policy violation). CreateTopics asks only for the topics
// that do not exist, so a user without the Create ACL can serve topics
// made beforehand. A refusal seen by a Publish already waiting for its
// record ends the wait; the record may still be sent if the refusal passes.
package kafka
