package mqtt_test

import (
	"context"
	"fmt"
	"log"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/mqtt"
)

// A server consumes requests in a group; a client publishes one and gets the
// reply in its inbox. Both need an MQTT 5 broker at 127.0.0.1:1883.
func Example() {
	ctx := context.Background()
	bus, err := mqtt.New(rpcbus.Config{Type: "mqtt", Brokers: []string{"127.0.0.1:1883"}})
	if err != nil {
		log.Fatal(err)
	}
	defer bus.Close()

	// Server: a member of the group "greeter-servers"; it replies to the
	// address the request names, then acknowledges.
	sub, err := bus.Subscribe(ctx, rpcbus.SubscribeOptions{Topics: []string{"example.greeter"}, Group: "greeter-servers"},
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
	err = bus.Publish(ctx, "example.greeter", &rpcbus.Message{
		Value:   []byte("world"),
		Headers: map[string]string{"reply-to": inbox.Address()},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-replies)
}

// New takes the rpc_bus section of the YAML configuration.
func ExampleNew() {
	bus, err := mqtt.New(rpcbus.Config{
		Type:    "mqtt",
		Brokers: []string{"tls://broker-1:8883", "tls://broker-2:8883"},
		Settings: map[string]any{
			"username":       "vrpc",
			"password":       "secret",
			"tls_ca_file":    "/etc/vrpc/ca.pem",
			"session_expiry": "10m",
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer bus.Close()
}
