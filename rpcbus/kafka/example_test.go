package kafka_test

import (
	"context"
	"fmt"
	"log"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/embedded"
	"github.com/nextpkg/vrpc/rpcbus/kafka"
)

// A server consumes requests in a group; a client publishes one and gets the
// reply in its inbox. Both use an in-process broker on a free port here.
func Example() {
	ctx := context.Background()
	broker, err := embedded.Start("127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer broker.Close()
	bus, err := kafka.New(rpcbus.Config{Brokers: []string{broker.Addr()}})
	if err != nil {
		log.Fatal(err)
	}
	defer bus.Close()

	// Server: reply to the address the request names, then acknowledge.
	sub, err := bus.Subscribe(ctx, rpcbus.SubscribeOptions{Topics: []string{"greeter"}, Group: "greeter-servers"},
		func(d *rpcbus.Delivery) {
			go func() {
				reply := &rpcbus.Message{Value: append([]byte("hello, "), d.Value...)}
				if err := bus.Publish(ctx, d.Headers["reply-to"], reply); err != nil {
					log.Print(err)
				}
				d.Ack()
			}()
		})
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close(ctx)

	// Client: open the inbox before publishing, so the reply cannot be
	// missed.
	replies := make(chan string, 1)
	inbox, err := bus.Inbox(ctx, "client-1", func(m *rpcbus.Message) { replies <- string(m.Value) })
	if err != nil {
		log.Fatal(err)
	}
	defer inbox.Close()
	err = bus.Publish(ctx, "greeter", &rpcbus.Message{
		Value:   []byte("world"),
		Headers: map[string]string{"reply-to": inbox.Address()},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-replies)
	// Output: hello, world
}

// New takes the rpc_bus section of the YAML configuration.
func ExampleNew() {
	bus, err := kafka.New(rpcbus.Config{
		Type:     "kafka",
		Brokers:  []string{"kafka-1:9092", "kafka-2:9092"},
		Settings: map[string]any{"compression": "zstd", "acks": "all", "partitions": 12},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer bus.Close()
}
