package nats_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/nextpkg/vrpc/rpcbus"
	_ "github.com/nextpkg/vrpc/rpcbus/nats" // registers rpc_bus.type "nats"
)

// A server and a client, each with a bus of its own as in two processes:
// the server answers each request on the reply address it carries.
// (Not run by go test: it needs a NATS server with JetStream.)
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := rpcbus.Config{
		Type:     "nats",
		Brokers:  []string{"nats://127.0.0.1:4222"},
		Settings: map[string]any{"ack_wait": "30s", "max_age": "1h"},
	}
	server, err := rpcbus.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer server.Close()
	client, err := rpcbus.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	// The server declares its topic, then consumes it as group "servers".
	topic := "vrpc.requests.example"
	if err := server.(rpcbus.TopicCreator).CreateTopics(ctx, topic); err != nil {
		log.Fatal(err)
	}
	sub, err := server.Subscribe(ctx, rpcbus.SubscribeOptions{Topics: []string{topic}, Group: "servers"},
		func(d *rpcbus.Delivery) {
			reply := &rpcbus.Message{Value: append([]byte("pong to "), d.Value...)}
			if err := server.Publish(ctx, d.Headers["reply-to"], reply); err == nil {
				d.Ack() // only once the reply is published
			}
		})
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close(ctx)

	// The client's reply address, then a request carrying it.
	replies := make(chan string, 1)
	inbox, err := client.(rpcbus.Inboxer).Inbox(ctx, "vrpc.responses.example-client", func(m *rpcbus.Message) {
		replies <- string(m.Value)
	})
	if err != nil {
		log.Fatal(err)
	}
	defer inbox.Close()
	req := &rpcbus.Message{Value: []byte("ping"), Headers: map[string]string{"reply-to": inbox.Address()}}
	if err := client.Publish(ctx, topic, req); err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-replies)
}
