package rpcbus_test

import (
	"fmt"

	"github.com/nextpkg/vrpc/rpcbus"
)

// Settings and addresses as a log line or a debug page may show them.
func ExampleRedactSettings() {
	settings := map[string]any{"username": "vrpc", "password": "s3cret", "partitions": 4}
	fmt.Println(rpcbus.RedactSettings(settings))
	fmt.Println(rpcbus.RedactAddress("nats://vrpc:s3cret@nats.example:4222"))
	// Output:
	// map[partitions:4 password:xxxxx username:vrpc]
	// nats://vrpc:xxxxx@nats.example:4222
}
