package vserver_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/example/demo/demoserver"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/embedded"
	"github.com/nextpkg/vrpc/vclient"
	"github.com/nextpkg/vrpc/vserver"
)

// A server forwards the requests for target "demo" from Kafka to the demo
// gRPC service; a client calls it through the queue. Everything runs in
// this process here: an in-process Kafka on a free port, the demo target
// on loopback.
func ExampleNewServer() {
	broker, err := embedded.Start("127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer broker.Close()
	bus := rpcbus.Config{Type: "kafka", Brokers: []string{broker.Addr()}}

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	target := demoserver.Serve(lis, "demo-1") // an ordinary gRPC service
	defer target.Stop()

	server, err := vserver.NewServer(&vrpc.Config{
		Name:   "example-server",
		Port:   -1, // no admin HTTP endpoint
		RpcBus: bus,
		Targets: map[string]vrpc.Target{
			"demo": {Endpoint: lis.Addr().String(), Timeout: "5s"},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	started := make(chan error, 1)
	go func() { started <- server.Start() }() // blocks until Stop
	select {
	case <-server.Ready():
	case err := <-started:
		log.Fatal(err)
	}
	defer func() {
		server.Stop()
		<-started
	}()

	client, err := vclient.New(vclient.Config{ClientID: "example-client", RpcBus: bus})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	payload, err := proto.Marshal(&demo.Request{Message: "hello over Kafka"})
	if err != nil {
		log.Fatal(err)
	}
	resp, err := client.Call(ctx, "demo", "Ping", payload, nil)
	if err != nil {
		log.Fatal(err)
	}
	var reply demo.Response
	if err := proto.Unmarshal(resp.Payload, &reply); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s (served by %s)\n", reply.Message, reply.ServedBy)
	// Output: hello over Kafka (served by demo-1)
}
