// Command edge is a program that only calls, as an edge device would: the
// vRPC client over Kafka and the interceptor on a plain grpc-go conn. It
// links the client, the codec and the Kafka bus, and nothing of the
// server, the other buses or the embedded broker (README: "What a caller
// links").
//
// Run from the repository root, each in its own terminal:
//
//	go run ./example/target                              # the gRPC target on :8081
//	go run ./cmd/vrpc serve -f example/embedded.yaml     # vRPC server + Kafka on 127.0.0.1:9092
//	go run ./example/edge                                # this
package main

import (
	"context"
	"fmt"
	"log"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/example/demo"
)

func main() {
	// The defaults: Kafka on 127.0.0.1:9092, which the root package
	// registers; another bus is one blank import away, such as
	// _ "github.com/nextpkg/vrpc/rpcbus/nats".
	vrpc.MustInitClient()
	defer vrpc.Close()

	conn, err := grpc.NewClient("vrpc:///demo",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(vrpc.Interceptor()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := demo.NewDemoClient(conn).Ping(ctx, &demo.Request{Message: "Hello vRPC"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("Response: message=%q served_by=%q\n", resp.GetMessage(), resp.GetServedBy())
}
