package redis_test

import (
	"context"
	"fmt"
	"log"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/redis"
)

// A server consumes requests in a group; a client publishes one and gets
// the reply in its inbox. (Not run by go test: it needs a Redis server.)
func Example() {
	ctx := context.Background()
	bus, err := redis.New(rpcbus.Config{Type: "redis", Brokers: []string{"127.0.0.1:6379"}})
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
	fmt.Println(<-replies) // hello, world
}

// New takes the rpc_bus section of the YAML configuration.
func ExampleNew() {
	bus, err := redis.New(rpcbus.Config{
		Type:    "redis",
		Brokers: []string{"redis.internal:6380"},
		Settings: map[string]any{
			"username": "vrpc", "password": "secret",
			"tls_ca_file": "/etc/vrpc/redis-ca.pem",
			"max_len":     200000, "claim_idle": "1m",
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer bus.Close()
}
