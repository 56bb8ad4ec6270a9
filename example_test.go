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
	"github.com/nextpkg/vrpc/internal/inproc"
)

// startDeployment runs a whole deployment in this process for the
// examples: the in-memory bus, a vRPC server serving target "demo", and
// the demo gRPC target behind it (served_by "demo-target"). It returns the
// client configuration that reaches it; a real program names its bus, say
//
//	vrpc.ClientConfig{
//		ClientID: "demo-client",
//		RpcBus:   rpcbus.Config{Type: "kafka", Brokers: []string{"localhost:9092"}},
//	}
func startDeployment() (cfg vrpc.ClientConfig, stop func()) {
	d, err := inproc.Start(context.Background(), inproc.Options{Bus: inproc.BusMemory, Target: "demo"})
	if err != nil {
		log.Fatal(err)
	}
	return d.ClientConfig("demo-client"), func() { _ = d.Close() }
}

// MustInitClient opens the process-wide client once, at start-up. Given no
// option it loads $VRPC_CLIENT_CONFIG, client.yaml or etc/client.yaml;
// here the configuration is given in Go.
func ExampleMustInitClient() {
	cfg, stop := startDeployment()
	defer stop()

	vrpc.MustInitClient(vrpc.WithConfig(cfg))
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
	fmt.Println(reply.Message, reply.ServedBy)

	// Or with generated stubs, and no grpc.ClientConn at all:
	r, err := demo.NewDemoClient(vrpc.NewConn("demo")).Ping(ctx, &demo.Request{Message: "hello"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(r.Message, r.ServedBy)
	// Output:
	// hi demo-target
	// hello demo-target
}

// Interceptor keeps a program's gRPC client code as it is: its unary calls
// go over the bus. A "vrpc:///<target>" conn names the target and is ready
// at once, even with go-zero's blocking dial.
func ExampleInterceptor() {
	cfg, stop := startDeployment()
	defer stop()
	// With no option, MustInitClient reads client.yaml.
	vrpc.MustInitClient(vrpc.WithConfig(cfg))
	defer vrpc.Close()

	c := zrpc.MustNewClient(zrpc.RpcClientConf{Target: "vrpc:///demo"},
		zrpc.WithUnaryClientInterceptor(vrpc.Interceptor()))
	defer c.Conn().Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	reply, err := demo.NewDemoClient(c.Conn()).Ping(ctx, &demo.Request{Message: "hi"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(reply.Message, reply.ServedBy)

	// A plain grpc-go conn to the target's real (maybe unreachable)
	// address works too; WithTarget names the target.
	conn, err := grpc.NewClient("demo.internal:8081",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(vrpc.Interceptor(vrpc.WithTarget("demo"))))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	reply, err = demo.NewDemoClient(conn).Ping(ctx, &demo.Request{Message: "hello"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(reply.Message, reply.ServedBy)
	// Output:
	// hi demo-target
	// hello demo-target
}
