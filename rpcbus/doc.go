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
package rpcbus
