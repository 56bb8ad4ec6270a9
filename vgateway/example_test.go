package vgateway_test

import (
	"log"
	"os"
	"os/signal"

	"github.com/nextpkg/vrpc/vclient"
	"github.com/nextpkg/vrpc/vgateway"
)

// Run a gateway from client.yaml until SIGINT, as `vrpc gateway -f
// client.yaml` does. Any gRPC client then calls 127.0.0.1:9000 as it would
// call the target: demo.Demo goes to target "demo" over the bus.
//
//	client_id: gateway
//	rpc_bus: {type: kafka, brokers: [localhost:9092]}
//	services: {demo.Demo: demo}
//	gateway: {listen: 127.0.0.1:9000}
func ExampleNew() {
	var cfg vgateway.FileConfig
	if err := vgateway.LoadConfig("client.yaml", &cfg); err != nil {
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
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt)
		<-sig
		gw.Stop() // lets the calls in flight finish
	}()
	if err := gw.ListenAndServe(); err != nil {
		log.Fatal(err)
	}
}
