// Command interceptor calls the demo service through vRPC the recommended
// way: an ordinary go-zero zrpc client and generated stubs, with the vRPC
// interceptor carrying each call over Kafka.
//
// Run from the repository root, each in its own terminal:
//
//	go run ./example/target                              # the gRPC target on :8081
//	go run ./cmd/vrpc serve -f example/embedded.yaml     # vRPC server + Kafka on 127.0.0.1:9092
//	go run ./example/interceptor                         # this
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

	"github.com/zeromicro/go-zero/zrpc"

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
	// 初始化vRPC客户端（可传入配置）: open the vRPC client.
	vrpc.MustInitClient(vrpc.WithConfigFile(file))
	defer vrpc.Close()

	// 初始化切面: the interceptor.
	v := zrpc.WithUnaryClientInterceptor(vrpc.Interceptor())

	// 初始化客户端: "vrpc:///demo" names the target; the conn is ready at
	// once, and zrpc's call timeout (2s by default) is raised to 5s.
	c := zrpc.MustNewClient(zrpc.RpcClientConf{Target: "vrpc:///demo", Timeout: 5000}, v)
	defer c.Conn().Close()

	// 发起RPC调用并返回结果: the call goes over Kafka.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := demo.NewDemoClient(c.Conn()).Ping(ctx, &demo.Request{Message: "Hello vRPC"})
	if err != nil {
		return err
	}
	fmt.Printf("Response: message=%q served_by=%q\n", resp.GetMessage(), resp.GetServedBy())
	return nil
}
