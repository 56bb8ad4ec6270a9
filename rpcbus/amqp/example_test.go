package amqp_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/nextpkg/vrpc/rpcbus"
	_ "github.com/nextpkg/vrpc/rpcbus/amqp" // registers rpc_bus.type amqp
)

// A server's bus consumes the requests of its group; a client's publishes
// to them and gets replies on its inbox. (Not run: it needs a broker.)
func Example() {
	cfg := rpcbus.Config{
		Type:     "amqp",
		Brokers:  []string{"127.0.0.1:5672"},
		Settings: map[string]any{"vhost": "/", "username": "guest", "password": "guest", "queue_type": "quorum"},
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
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The group's queue "vrpc.requests.echo:echo-server" is shared by every
	// server of the group.
	sub, err := server.Subscribe(ctx, rpcbus.SubscribeOptions{Topics: []string{"vrpc.requests.echo"}, Group: "echo-server"},
		func(d *rpcbus.Delivery) {
			// Reply to the address the request carries, then acknowledge.
			_ = server.Publish(context.Background(), d.Headers["reply-to"], &rpcbus.Message{Value: d.Value})
			d.Ack()
		})
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close(context.Background())

	replies := make(chan string, 1)
	inbox, err := client.(rpcbus.Inboxer).Inbox(ctx, "vrpc.responses.example", func(m *rpcbus.Message) { replies <- string(m.Value) })
	if err != nil {
		log.Fatal(err)
	}
	defer inbox.Close()
	err = client.Publish(ctx, "vrpc.requests.echo", &rpcbus.Message{
		Value:   []byte("hello"),
		Headers: map[string]string{"reply-to": inbox.Address()},
	})
	if err != nil {
		log.Fatal(err) // wraps rpcbus.ErrUnknownTopic if no group has subscribed
	}
	fmt.Println(<-replies)
}
