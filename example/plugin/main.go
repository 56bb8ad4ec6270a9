// Command plugin is a vRPC server with a third-party plugin compiled in:
// importing package stamp registers the "stamp" plugin, which the
// configuration then lists like a built-in one. This is how a user adds
// plugins of their own to a server.
//
//	go run ./example/target                                  # the gRPC target on :8081
//	go run ./cmd/vrpc serve -f example/embedded.yaml         # a broker on 127.0.0.1:9092
//	go run ./example/plugin -f example/plugin/server.yaml    # this server
//	go run ./example/direct                                  # a client
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/nextpkg/vrpc"
	_ "github.com/nextpkg/vrpc/example/plugin/stamp" // registers plugin "stamp"
	_ "github.com/nextpkg/vrpc/rpcbus/all"           // rpc_bus.type kafka, embedded, memory
	"github.com/nextpkg/vrpc/vserver"
)

func main() {
	file := flag.String("f", "example/plugin/server.yaml", "server configuration file")
	flag.Parse()
	config := new(vrpc.Config)
	if err := vrpc.LoadConfig(*file, config); err != nil {
		log.Fatal(err) // names the bad key, plugin settings included
	}
	server, err := vserver.NewServer(config)
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
		server.Stop()
	}()
	if err := server.Start(); err != nil {
		log.Fatal(err)
	}
}
