// Command target runs the demo gRPC service, demo.Demo, on :8081: the
// target that example/server.yaml forwards "demo" to. It is an ordinary
// grpc-go server and knows nothing of vRPC.
//
// The examples, each in its own terminal, from the repository root:
//
//	go run ./example/target                              # this: the gRPC target on :8081
//	go run ./cmd/vrpc serve -f example/embedded.yaml     # a vRPC server hosting Kafka on 127.0.0.1:9092
//	go run ./example/interceptor                         # or ./example/direct, ./example/conn
//
// With a Kafka of your own on localhost:9092, run `go run ./example/server`
// instead of `vrpc serve -f example/embedded.yaml`.
package main

import (
	"context"
	"flag"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/nextpkg/vrpc/example/demo/demoserver"
)

func main() {
	listen := flag.String("listen", ":8081", "address to serve demo.Demo on")
	name := flag.String("name", "demo-target", "reported in each reply's served_by")
	flag.Parse()

	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	srv := demoserver.Serve(lis, *name)
	log.Printf("demo.Demo gRPC service %s on %s", *name, lis.Addr())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	srv.GracefulStop()
}
