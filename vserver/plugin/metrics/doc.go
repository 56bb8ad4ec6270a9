// Package metrics is the vRPC server plugin "metrics": per-call Prometheus
// metrics on the server's registry, served on the admin endpoint's
// /metrics:
//
//	vrpc_server_calls_total{target,method,code}
//	vrpc_server_queue_wait_seconds{target}             publish to take-off
//	vrpc_server_target_duration_seconds{target,method} the gRPC call
//	vrpc_server_calls_in_flight{target}
//
//	plugins:
//	  - name: metrics
//	    settings: {max_methods: 200, queue_buckets: [...], target_buckets: [...]}
//
// Calls the target did not know (UNIMPLEMENTED) and methods past
// max_methods are labelled "other", so that callers cannot grow the label
// set. The server's own metrics (in flight, expired, dedup hits, dead
// letters, lag) are on the registry with or without this plugin. The
// package registers the plugin in its init; package vserver imports it,
// so every server has it.
package metrics
