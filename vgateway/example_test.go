package vgateway_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/internal/inproc"
	"github.com/nextpkg/vrpc/vclient"
	"github.com/nextpkg/vrpc/vgateway"
)

// Run a gateway from a client.yaml, as `vrpc gateway -f client.yaml` does
// (until SIGINT). Any gRPC client then calls the gateway as it would call
// the target: demo.Demo goes to target "demo" over the bus. The file here,
// testdata/example-client.yaml, names the in-memory bus on which this
// example runs a vRPC server and the demo target; a real one names the
// bus the servers consume:
//
//	client_id: gateway
//	rpc_bus: {type: kafka, brokers: [localhost:9092]}
//	services: {demo.Demo: demo}
//	gateway: {listen: 127.0.0.1:9000}
func ExampleNew() {
	d, err := inproc.Start(context.Background(), inproc.Options{Bus: inproc.BusMemory, Brokers: []string{"vgateway-example"}, Target: "demo"})
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()

	var cfg vgateway.FileConfig
	if err := vgateway.LoadConfig("testdata/example-client.yaml", &cfg); err != nil {
		log.Fatal(err)
	}
	c, err := vclient.New(cfg.Config)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	gw, err := vgateway.New(c, cfg.Gateway)
	if err != nil {
		log.Fatal(err)
	}
	lis, err := net.Listen("tcp", cfg.Gateway.Listen) // or gw.ListenAndServe()
	if err != nil {
		log.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- gw.Serve(lis) }()
	defer func() {
		gw.Stop() // lets the calls in flight finish
		if err := <-served; err != nil {
			log.Fatal(err)
		}
	}()

	// A plain gRPC client of the gateway: no vRPC in it.
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reply, err := demo.NewDemoClient(conn).Ping(ctx, &demo.Request{Message: "hi"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(reply.Message, reply.ServedBy)
	// Output: hi demo-target
}
