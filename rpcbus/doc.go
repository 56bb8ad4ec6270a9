// Package rpcbus carries vRPC envelopes between clients and servers.
//
// A bus is a few methods (Bus); extras a backend may offer, such as a
// private reply address (Inboxer), are separate interfaces found by type
// assertion. Backends register under a name in init() and are picked by
// rpc_bus.type in the YAML configuration:
//
//	rpc_bus:
//	  type: kafka
//	  brokers: [localhost:9092]
//	  settings: {compression: gzip}
//
// Import a backend for its side effect, or import
// github.com/nextpkg/vrpc/rpcbus/all for every backend vRPC ships.
//
// # Errors
//
// Two kinds of failure to reach the bus are told apart, because callers
// treat them oppositely. An error wrapping ErrUnavailable means the bus's
// servers could not be reached (yet): wait and try again. An error wrapping
// ErrRefused means they answered and refused, for a reason retrying will not
// change: credentials (ErrUnauthenticated), permissions such as ACLs
// (ErrForbidden), or a cluster setting such as a replication factor larger
// than the live brokers. Backends report a refusal as soon as the server
// does, with the setting, ACL or broker command to change in the message.
package rpcbus
