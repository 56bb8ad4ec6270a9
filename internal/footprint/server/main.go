// Command server is the single-bus server program that the footprint
// command measures: a vRPC server (vserver) linking one bus, Kafka (NATS
// when built with -tags footprint_nats), loaded from -f and stopped by
// SIGTERM.
package main

import (
	"context"
	"flag"
	"log"
	"os/signal"
	"syscall"

	_ "github.com/nextpkg/vrpc/rpcbus/kafka" // rpc_bus.type kafka
	"github.com/nextpkg/vrpc/vconfig"
	"github.com/nextpkg/vrpc/vserver"
)

func main() {
	file := flag.String("f", "server.yaml", "server configuration file")
	flag.Parse()

	var cfg vconfig.Config
	if err := vconfig.Load(*file, &cfg); err != nil {
		log.Fatal(err)
	}
	srv, err := vserver.NewServer(&cfg)
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Stop()
	}()
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
}
