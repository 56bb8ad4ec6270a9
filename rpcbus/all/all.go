// Package all registers every rpc_bus backend vRPC ships, for programs
// that pick the bus from their configuration alone:
//
//	import _ "github.com/nextpkg/vrpc/rpcbus/all"
//
// It makes rpc_bus.type kafka, embedded, nats, amqp, redis, mqtt and memory
// available.
package all

import (
	_ "github.com/nextpkg/vrpc/rpcbus/amqp"     // amqp
	_ "github.com/nextpkg/vrpc/rpcbus/embedded" // embedded
	_ "github.com/nextpkg/vrpc/rpcbus/kafka"    // kafka
	_ "github.com/nextpkg/vrpc/rpcbus/memory"   // memory
	_ "github.com/nextpkg/vrpc/rpcbus/mqtt"     // mqtt
	_ "github.com/nextpkg/vrpc/rpcbus/nats"     // nats
	_ "github.com/nextpkg/vrpc/rpcbus/redis"    // redis
)
