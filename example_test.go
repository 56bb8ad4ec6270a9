package vrpc_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/zeromicro/go-zero/zrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/rpcbus"
)

// MustInitClient opens the process-wide client once, at start-up. Given no
// option it loads $VRPC_CLIENT_CONFIG, client.yaml or etc/client.yaml;
// here the configuration is given in Go.
func ExampleMustInitClient() {
	vrpc.MustInitClient(vrpc.WithConfig(vrpc.ClientConfig{
		ClientID: "demo-client",
		RpcBus:   rpcbus.Config{Type: "kafka", Brokers: []string{"localhost:9092"}},
	}))
	defer vrpc.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// With the request's bytes:
	payload, err := proto.Marshal(&demo.Request{Message: "hi"})
	if err != nil {
		log.Fatal(err)
	}
	resp, err := vrpc.GetClient().Call(ctx, "demo", "Ping", payload, map[string]string{"user-id": "12345"})
	if err != nil {
		log.Fatal(err)
	}
	var reply demo.Response
	if err := proto.Unmarshal(resp.Payload, &reply); err != nil {
		log.Fatal(err)
	}
	fmt.Println(reply.Message)

	// Or with generated stubs, and no grpc.ClientConn at all:
	r, err := demo.NewDemoClient(vrpc.NewConn("demo")).Ping(ctx, &demo.Request{Message: "hi"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(r.Message)
}

// Interceptor keeps a program's gRPC client code as it is: its unary calls
// go over the bus. A "vrpc:///<target>" conn names the target and is ready
// at once, even with go-zero's blocking dial.
func ExampleInterceptor() {
	vrpc.MustInitClient() // client.yaml
	defer vrpc.Close()

	c := zrpc.MustNewClient(zrpc.RpcClientConf{Target: "vrpc:///demo"},
		zrpc.WithUnaryClientInterceptor(vrpc.Interceptor()))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	reply, err := demo.NewDemoClient(c.Conn()).Ping(ctx, &demo.Request{Message: "hi"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(reply.Message)

	// A plain grpc-go conn to the target's real (maybe unreachable)
	// address works too; WithTarget names the target.
	conn, err := grpc.NewClient("demo.internal:8081",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(vrpc.Interceptor(vrpc.WithTarget("demo"))))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	if _, err := demo.NewDemoClient(conn).Ping(ctx, &demo.Request{Message: "hi"}); err != nil {
		log.Fatal(err)
	}
}
