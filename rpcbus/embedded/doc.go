// Package embedded runs a Kafka broker (franz-go's kfake) inside the
// process, so that `vrpc demo`, `vrpc serve` with rpc_bus.type embedded,
// and tests need no Kafka install.
//
// Importing the package registers rpc_bus.type embedded: a Kafka bus whose
// broker listens on rpc_bus.brokers[0] (default 127.0.0.1:9092). Other
// processes reach it with type kafka as they would a real broker; buses of
// type embedded in one process with the same address share it, and it
// stops with the last one closed. Start gives a program or a test a broker
// of its own without a bus.
//
// It is a package of its own so that programs using Kafka (package kafka)
// do not link an in-process broker. Type embedded takes every
// rpc_bus.settings key of type kafka but the tls ones (the broker serves
// plain TCP; with SASL settings it asks its clients for that user), and
// also:
//
//	data_dir         a directory in which the broker keeps its data across
//	                 restarts (default: memory only)
//	retention        the broker deletes records older than this, in
//	                 every topic without a retention.ms of its own
//	                 (default 10m; 1s to 30 days)
//	retention_bytes  and the oldest records of a partition holding more
//	                 than this many bytes (default 8 MiB; at least
//	                 64 KiB; -1 for no bound)
//
// kfake honours retention.ms and retention.bytes but, left to itself,
// applies them only to topics that set them, and hourly; and it frees
// memory a segment at a time, with 100 MiB segments. So the broker sets
// both as broker defaults, keeps each partition in segments of
// retention_bytes/16 (16 KiB to 1 MiB), and runs a goroutine, started
// with the broker and stopped before it, that applies retention every
// second. Without it an embedded broker kept every request and reply ever
// published. Retention ignores consumer groups, as on Kafka: a group more
// than retention_bytes behind loses its oldest requests.
package embedded
