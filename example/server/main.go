// Command server is a vRPC server, as in the original design: it consumes
// the requests for target "demo" from Kafka and forwards them to the demo
// gRPC service on localhost:8081.
//
// It loads example/server.yaml (or -f FILE); with -literal it uses the same
// configuration written as a Go struct literal instead. Run from the
// repository root, each in its own terminal:
//
//	go run ./example/target     # the gRPC target on :8081
//	go run ./example/server     # this; needs Kafka on localhost:9092
//	go run ./example/direct     # a client (or ./example/interceptor, ./example/conn)
//
// No Kafka? `go run ./cmd/vrpc serve -f example/embedded.yaml` hosts one on
// 127.0.0.1:9092 (and serves "demo" itself); this server can then join it.
// `go run ./cmd/vrpc serve -f example/server.yaml` is this program, too.
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/rpcbus"
	_ "github.com/nextpkg/vrpc/rpcbus/all" // rpc_bus.type kafka, embedded, memory
	"github.com/nextpkg/vrpc/vserver"
)

func main() {
	file := flag.String("f", "example/server.yaml", "server configuration file")
	literal := flag.Bool("literal", false, "use the configuration written in Go below instead of a file")
	flag.Parse()

	var config *vrpc.Config
	if *literal {
		config = &vrpc.Config{
			Name: "vrpc-server",
			Host: "127.0.0.1",
			Port: 8080,
			RpcBus: rpcbus.Config{
				Type:    "kafka",
				Brokers: []string{"localhost:9092"},
			},
			Topics: struct {
				Request  string `json:",default=vrpc.requests"`
				Response string `json:",default=vrpc.responses"`
			}{
				Request:  "vrpc.requests",
				Response: "vrpc.responses",
			},
			Targets: map[string]vrpc.Target{
				"demo": {
					Endpoint: "localhost:8081",
					Timeout:  "30s",
				},
			},
		}
	} else {
		config = new(vrpc.Config)
		if err := vrpc.LoadConfig(*file, config); err != nil {
			log.Fatal(err) // names the bad key
		}
	}

	server, err := vserver.NewServer(config)
	if err != nil {
		log.Fatal(err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal ends the process at once
		server.Stop()
	}()
	if err := server.Start(); err != nil {
		log.Fatal(err)
	}
}
