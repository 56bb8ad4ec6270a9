// Package vgateway is vRPC's ingress for callers that have no vRPC client:
// a gRPC server that accepts any service and method and carries each unary
// call over the bus, so that a client in any language (grpc-go, grpc-js,
// Python grpcio, grpcurl) points at the gateway instead of the target and
// changes nothing else.
//
// In the flow it sits before vclient:
//
//	caller --gRPC--> vgateway --vclient--> bus --> vserver --gRPC--> target
//
// A call's target is its "vrpc-target" request header, else the services
// table of the client config (full service name, or a package prefix ending
// in "."; the longest match wins). Payloads pass as bytes, never decoded;
// the caller's deadline, cancellation and metadata go with the call, and
// the target's reply, header, trailer and status (code, message, details)
// come back as they were. Streaming methods, found through the target's
// server reflection, are refused with UNIMPLEMENTED.
//
// The gateway serves grpc.health.v1 itself, and server reflection
// (grpc.reflection.v1 and v1alpha) for the targets of its services table,
// exchanged with each target's own reflection service over the bus, so
// that `grpcurl list` and `grpcurl describe` work through it.
//
// What a caller can make it hold is bounded: calls open per connection
// (max_concurrent_streams), request and reply bytes of the calls in flight
// across connections (max_in_flight_bytes, RESOURCE_EXHAUSTED beyond),
// message size (max_message_bytes, at most the client's), request headers
// (max_header_list_bytes), and idle or over-eager connections (keepalive).
package vgateway
