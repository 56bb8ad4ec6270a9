// Command conn calls the demo service through vRPC with generated stubs and
// no gRPC connection at all: vrpc.NewConn("demo") is the
// grpc.ClientConnInterface the stubs take.
//
// Run from the repository root, each in its own terminal:
//
//	go run ./example/target                              # the gRPC target on :8081
//	go run ./cmd/vrpc serve -f example/embedded.yaml     # vRPC server + Kafka on 127.0.0.1:9092
//	go run ./example/conn                                # this
//
// (With a Kafka of your own on localhost:9092, run `go run ./example/server`
// as the vRPC server instead.) The client configuration is
// example/client.yaml (-f to change).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"time"

	"google.golang.org/grpc/status"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/example/demo"
	_ "github.com/nextpkg/vrpc/rpcbus/all" // rpc_bus.type kafka, embedded, memory
)

func main() {
	file := flag.String("f", "example/client.yaml", "client configuration file")
	flag.Parse()
	if err := run(*file); err != nil {
		log.Fatal(err)
	}
}

func run(file string) error {
	vrpc.MustInitClient(vrpc.WithConfigFile(file))
	defer vrpc.Close()

	client := demo.NewDemoClient(vrpc.NewConn("demo"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	resp, err := client.Ping(ctx, &demo.Request{Message: "Hello vRPC"})
	if err != nil {
		return err
	}
	fmt.Printf("Response: message=%q served_by=%q\n", resp.GetMessage(), resp.GetServedBy())

	// The target's own errors arrive as they would calling it directly.
	_, err = client.Ping(ctx, &demo.Request{Message: ""})
	fmt.Printf("Empty message: %s: %s\n", status.Code(err), status.Convert(err).Message())
	return nil
}
