// Package benchkit measures what a call through vRPC costs, against its two
// parts on their own: `vrpc bench` and the repository's Go benchmarks share
// it.
//
// Over one in-process deployment (package inproc) it drives four paths:
//
//   - direct: the demo gRPC target called over loopback, no vRPC;
//   - raw bus: the bus round trip vRPC makes, with no gRPC hop: a caller
//     publishes a request envelope to a topic, a consumer group member
//     publishes a reply envelope to the caller's inbox, the caller waits
//     for it (RawBus);
//   - vRPC: vclient → bus → vserver → target and back;
//   - gateway: a gRPC caller → vgateway → bus → vserver → target and back
//     (`vrpc bench --via gateway`).
//
// A vRPC call is both hops in sequence, so at best it takes the time of
// one plus the other: in throughput terms its limit is
// L = 1/(1/raw + 1/direct) (TwoHopLimit), and vRPC/L says how much of what
// the parts allow vRPC delivers. The gateway path adds a second gRPC hop:
// its limit is L = 1/(2/direct + 1/raw) (GatewayLimit).
//
// Run drives a path in a closed loop (each worker starts its next call when
// the last one returns) for a fixed time after a warm-up, and reports the
// throughput and the latency percentiles from the sorted samples. RunRounds
// drives several paths in turn, in slices, so that on a machine with other
// work they see the same share of it.
//
// The raw round trip uses names beside the deployment's (RawNames): on the
// buses where inproc makes names unique to a run, so are they, and the
// deployment's Close removes them.
package benchkit
