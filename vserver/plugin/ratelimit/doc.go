// Package ratelimit is the vRPC server plugin "ratelimit": token buckets
// per target and per client id. A call over a bucket is refused with
// RESOURCE_EXHAUSTED, "retry after <d>" in the message and a
// google.rpc.RetryInfo detail; a call refused by its client's bucket does
// not spend the target's token.
//
//	plugins:
//	  - name: ratelimit
//	    settings:
//	      per_target: {rate: 500, burst: 1000}        # each target's own bucket
//	      targets: {reports: {rate: 20, burst: 20}}   # ... or its own limits
//	      per_client: {rate: 50, burst: 100}          # each client id's own bucket
//	      clients: {batch: {rate: 200, burst: 200}}
//	      max_clients: 10000                          # client buckets held (LRU)
//
// Limits hold per server process: N servers in a group let through up to
// N times the rate. The package registers the plugin in its init; package
// vserver imports it, so every server has it.
package ratelimit
