package vclient_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/rpcbus"
	_ "github.com/nextpkg/vrpc/rpcbus/kafka" // registers rpc_bus.type kafka
	"github.com/nextpkg/vrpc/vclient"
)

// newClient opens a client on the Kafka at localhost:9092; a vRPC server
// serving target "demo" consumes its requests.
func newClient() *vclient.Client {
	client, err := vclient.New(vclient.Config{
		ClientID: "demo-client", // replies come back on vrpc.responses.demo-client
		RpcBus:   rpcbus.Config{Type: "kafka", Brokers: []string{"localhost:9092"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	return client
}

// Call sends a request message's protobuf bytes to a target's method and
// returns the reply's bytes. Metadata becomes the call's incoming metadata
// at the target.
func ExampleClient_Call() {
	client := newClient()
	defer client.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel() // the deadline travels with the request
	payload, err := proto.Marshal(&demo.Request{Message: "hi"})
	if err != nil {
		log.Fatal(err)
	}
	// "Ping" is resolved by the server through the target's reflection;
	// "/demo.Demo/Ping" needs no reflection.
	resp, err := client.Call(ctx, "demo", "Ping", payload, map[string]string{"user-id": "12345"})
	if err != nil {
		// The target's own status, or vRPC's (DEADLINE_EXCEEDED,
		// UNAVAILABLE, UNIMPLEMENTED for an unknown target, ...).
		log.Fatalf("%s: %s", status.Code(err), status.Convert(err).Message())
	}
	var reply demo.Response
	if err := proto.Unmarshal(resp.Payload, &reply); err != nil {
		log.Fatal(err)
	}
	fmt.Println(reply.Message, resp.Header.Get("x-served-by"))
}

// NewConn gives generated gRPC stubs a connection that carries every
// unary call over the bus: no grpc.ClientConn, no address of the target.
func ExampleNewConn() {
	client := newClient()
	defer client.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var header metadata.MD // the target's response header, as over gRPC
	reply, err := demo.NewDemoClient(vclient.NewConn(client, "demo")).Ping(ctx, &demo.Request{Message: "hi"}, grpc.Header(&header))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(reply.Message, header.Get("x-served-by"))
}

// The interceptor carries the unary calls of an existing gRPC conn over the
// bus; the conn itself is never used for them, so its address need not be
// reachable. The target is "demo" for every call here; without WithTarget
// it comes from the "vrpc-target" header, a "vrpc:///<target>" conn or the
// services table of the client config.
func ExampleClient_UnaryClientInterceptor() {
	client := newClient()
	defer client.Close()

	conn, err := grpc.NewClient("passthrough:///demo.internal:8081",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(client.UnaryClientInterceptor(vclient.WithTarget("demo"))))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	reply, err := demo.NewDemoClient(conn).Ping(ctx, &demo.Request{Message: "hi"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(reply.Message)
}

// The client's metrics (pending calls, reply latency, timeouts) are a
// prometheus.Collector to register where the application serves its own.
func ExampleClient_Collector() {
	client := newClient()
	defer client.Close()
	prometheus.MustRegister(client.Collector())
	http.Handle("/metrics", promhttp.Handler())
}
