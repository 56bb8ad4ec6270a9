package vrpc_test

import (
	"testing"

	"github.com/zeromicro/go-zero/zrpc"
	"google.golang.org/protobuf/proto"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/internal/vtest"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vserver"
)

// seedServer is the seed design's server snippet, verbatim but for the
// final Start, which would block: it must keep compiling.
func seedServer() (*vserver.Server, error) {
	config := &vrpc.Config{
		Name: "vrpc-server",
		Host: "0.0.0.0",
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

	server, err := vserver.NewServer(config)
	if err != nil {
		panic(err)
	}
	return server, nil
}

var _ = seedServer

// TestSeedUsages runs the seed's client usages through the process-wide
// client: a go-zero zrpc client (NonBlock false, as a struct literal has
// it) whose target is unreachable from the caller, and the direct Call.
func TestSeedUsages(t *testing.T) {
	bus := vtest.StartKafka(t)
	addr := vtest.StartDemo(t, "seed")
	vtest.StartServer(t, vtest.ServerConfig(bus, map[string]vrpc.Target{"demo": {Endpoint: addr, Timeout: "30s"}}))

	vrpc.MustInitClient(vrpc.WithConfig(vrpc.ClientConfig{ClientID: "demo-client", RpcBus: bus}))
	defer vrpc.Close()
	ctx := testContext(t)

	v := zrpc.WithUnaryClientInterceptor(vrpc.Interceptor())
	c := zrpc.MustNewClient(zrpc.RpcClientConf{Target: "vrpc:///demo", Timeout: 10000}, v)
	defer c.Conn().Close()
	resp, err := demo.NewDemoClient(c.Conn()).Ping(ctx, &demo.Request{Message: "zrpc"})
	if err != nil || resp.Message != "zrpc" || resp.ServedBy != "seed" {
		t.Fatalf("zrpc: got %v, %v", resp, err)
	}

	// A zrpc conf pointing at the real, unreachable address works with
	// NonBlock and vrpc.WithTarget.
	c2 := zrpc.MustNewClient(zrpc.RpcClientConf{Endpoints: []string{"127.0.0.1:1"}, NonBlock: true, Timeout: 10000},
		zrpc.WithUnaryClientInterceptor(vrpc.Interceptor(vrpc.WithTarget("demo"))))
	defer c2.Conn().Close()
	if resp, err := demo.NewDemoClient(c2.Conn()).Ping(ctx, &demo.Request{Message: "zrpc2"}); err != nil || resp.Message != "zrpc2" {
		t.Fatalf("zrpc with endpoints: got %v, %v", resp, err)
	}

	payload := mustMarshal(t, &demo.Request{Message: "direct"})
	r, err := vrpc.GetClient().Call(ctx, "demo", "Ping", payload, map[string]string{"user-id": "12345"})
	if err != nil {
		t.Fatal(err)
	}
	var out demo.Response
	if err := proto.Unmarshal(r.Payload, &out); err != nil || out.Message != "direct" {
		t.Fatalf("direct: got %v, %v", &out, err)
	}
	if resp, err := demo.NewDemoClient(vrpc.NewConn("demo")).Ping(ctx, &demo.Request{Message: "conn"}); err != nil || resp.Message != "conn" {
		t.Fatalf("vrpc.NewConn: got %v, %v", resp, err)
	}
}
