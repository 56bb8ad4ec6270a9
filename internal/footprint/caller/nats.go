//go:build footprint_nats

package main

import _ "github.com/nextpkg/vrpc/rpcbus/nats" // rpc_bus.type nats
