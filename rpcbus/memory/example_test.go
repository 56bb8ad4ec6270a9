package memory_test

import (
	"context"
	"fmt"

	"github.com/nextpkg/vrpc/rpcbus"
	_ "github.com/nextpkg/vrpc/rpcbus/memory" // registers rpc_bus.type "memory"
)

func Example() {
	ctx := context.Background()
	// A server bus and a client bus on the same in-memory broker.
	cfg := rpcbus.Config{Type: "memory", Brokers: []string{"example"}}
	server, _ := rpcbus.New(cfg)
	defer server.Close()
	client, _ := rpcbus.New(cfg)
	defer client.Close()

	// The client's reply address.
	replies := make(chan string)
	inbox, _ := client.(rpcbus.Inboxer).Inbox(ctx, "client-1", func(m *rpcbus.Message) {
		replies <- string(m.Value)
	})
	defer inbox.Close()

	// The server answers each request on the address it carries.
	sub, _ := server.Subscribe(ctx, rpcbus.SubscribeOptions{Topics: []string{"vrpc.requests"}, Group: "servers"},
		func(d *rpcbus.Delivery) {
			defer d.Ack()
			reply := &rpcbus.Message{Value: append([]byte("pong to "), d.Value...)}
			_ = server.Publish(ctx, d.Headers["reply-to"], reply)
		})
	defer sub.Close(ctx)

	err := client.Publish(ctx, "vrpc.requests", &rpcbus.Message{
		Value:   []byte("ping"),
		Headers: map[string]string{"reply-to": inbox.Address()},
	})
	fmt.Println(err)
	fmt.Println(<-replies)
	// Output:
	// <nil>
	// pong to ping
}
