// Command direct calls the demo service through vRPC with no gRPC stubs:
// target, method, the request's bytes and metadata in, the reply's bytes
// out.
//
// Run from the repository root, each in its own terminal:
//
//	go run ./example/target                              # the gRPC target on :8081
//	go run ./cmd/vrpc serve -f example/embedded.yaml     # vRPC server + Kafka on 127.0.0.1:9092
//	go run ./example/direct                              # this
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

	"google.golang.org/protobuf/proto"

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
	// 初始化vRPC客户端: open the vRPC client.
	vrpc.MustInitClient(vrpc.WithConfigFile(file))
	defer vrpc.Close()

	// 获取客户端实例: the process-wide client.
	client := vrpc.GetClient()

	// 直接调用. The payload is the request message's protobuf encoding; a
	// JSON payload such as `{"message": "Hello vRPC"}` is refused with
	// INVALID_ARGUMENT (JSON calls are not supported yet). "Ping" is
	// resolved by the server through the target's reflection service;
	// "/demo.Demo/Ping" needs no reflection.
	ctx := context.Background()
	requestData, err := proto.Marshal(&demo.Request{Message: "Hello vRPC"})
	if err != nil {
		return err
	}
	metadata := map[string]string{
		"user-id": "12345",
	}

	response, err := client.Call(ctx, "demo", "Ping", requestData, metadata)
	if err != nil {
		return err // a gRPC status error: status.Code(err) tells what failed
	}

	var reply demo.Response
	if err := proto.Unmarshal(response.Payload, &reply); err != nil {
		return err
	}
	fmt.Printf("Response: message=%q served_by=%q (header x-served-by=%v)\n",
		reply.GetMessage(), reply.GetServedBy(), response.Header.Get("x-served-by"))
	return nil
}
