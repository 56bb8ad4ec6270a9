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
//	data_dir  a directory in which the broker keeps its data across
//	          restarts (default: memory only)
package embedded
