// Package vclient is the calling side of vRPC: it turns a unary gRPC call
// into a request envelope, publishes it on the bus to the target's request
// topic, and waits on the client's own reply address for the answer.
//
// One Client serves any number of concurrent calls. Four ways in, all over
// the same Client:
//
//   - Client.Call: target, method, request bytes and metadata in, reply out;
//   - Client.UnaryClientInterceptor: keep using generated gRPC stubs on a
//     grpc.ClientConn (or a go-zero zrpc client) and let the interceptor
//     carry each call;
//   - NewConn: a grpc.ClientConnInterface for generated stubs with no
//     grpc.ClientConn at all;
//   - Client.ResolverBuilder: a "vrpc:///<target>" resolver whose
//     connections reach a loopback gRPC endpoint of the client, so that any
//     gRPC conn, even one dialled with grpc.WithBlock, is ready at once and
//     its calls go over the bus.
package vclient
