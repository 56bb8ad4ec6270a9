package vclient_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/internal/inproc"
	"github.com/nextpkg/vrpc/vclient"
)

// newClient opens a client of a whole deployment run in this process for
// the examples: the in-memory bus, a vRPC server serving target "demo",
// and the demo gRPC target behind it (served_by "demo-target"). In a real
// program the configuration names the bus the servers consume:
//
//	client, err := vclient.New(vclient.Config{
//		ClientID: "demo-client", // replies come back on vrpc.responses.demo-client
//		RpcBus:   rpcbus.Config{Type: "kafka", Brokers: []string{"localhost:9092"}},
//	})
//
// stop closes the client, then the deployment.
func newClient() (client *vclient.Client, stop func()) {
	d, err := inproc.Start(context.Background(), inproc.Options{Bus: inproc.BusMemory, Target: "demo"})
	if err != nil {
		log.Fatal(err)
	}
	client, err = vclient.New(d.ClientConfig("demo-client"))
	if err != nil {
		log.Fatal(err)
	}
	return client, func() {
		_ = client.Close()
		_ = d.Close()
	}
}

// Call sends a request message's protobuf bytes to a target's method and
// returns the reply's bytes. Metadata becomes the call's incoming metadata
// at the target.
func ExampleClient_Call() {
	client, stop := newClient()
	defer stop()

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
	// Output: hi [demo-target]
}

// NewConn gives generated gRPC stubs a connection that carries every
// unary call over the bus: no grpc.ClientConn, no address of the target.
func ExampleNewConn() {
	client, stop := newClient()
	defer stop()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var header metadata.MD // the target's response header, as over gRPC
	reply, err := demo.NewDemoClient(vclient.NewConn(client, "demo")).Ping(ctx, &demo.Request{Message: "hi"}, grpc.Header(&header))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(reply.Message, header.Get("x-served-by"))
	// Output: hi [demo-target]
}

// The interceptor carries the unary calls of an existing gRPC conn over the
// bus; the conn itself is never used for them, so its address need not be
// reachable. The target is "demo" for every call here; without WithTarget
// it comes from the "vrpc-target" header, a "vrpc:///<target>" conn or the
// services table of the client config.
func ExampleClient_UnaryClientInterceptor() {
	client, stop := newClient()
	defer stop()

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
	fmt.Println(reply.Message, reply.ServedBy)
	// Output: hi demo-target
}

// The client's metrics (calls by target and code, reply latency, timeouts,
// pending calls) are a prometheus.Collector to register where the
// application serves its own.
func ExampleClient_Collector() {
	client, stop := newClient()
	defer stop()
	reg := prometheus.NewRegistry()
	reg.MustRegister(client.Collector())
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := demo.NewDemoClient(vclient.NewConn(client, "demo")).Ping(ctx, &demo.Request{Message: "hi"}); err != nil {
		log.Fatal(err)
	}

	// What a scrape of /metrics shows of the call.
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for line := range strings.Lines(rec.Body.String()) {
		if strings.HasPrefix(line, "vrpc_client_calls_total") || strings.HasPrefix(line, "vrpc_client_pending_calls") {
			fmt.Print(line)
		}
	}
	// Output:
	// vrpc_client_calls_total{client_id="demo-client",code="OK",target="demo"} 1
	// vrpc_client_pending_calls{client_id="demo-client"} 0
}
