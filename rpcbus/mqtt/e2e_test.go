package mqtt_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/example/demo/demoserver"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vclient"
	"github.com/nextpkg/vrpc/vserver"
)

// kit is a second gRPC target for what the demo server cannot show:
// "error" fails with FAILED_PRECONDITION and a detail, "block" blocks until
// the call's context ends, "metadata" answers with the incoming user-id and
// sets a header and a trailer; anything else is echoed.
type kit struct{ demo.UnimplementedDemoServer }

func (kit) Ping(ctx context.Context, req *demo.Request) (*demo.Response, error) {
	switch req.Message {
	case "error":
		st, _ := status.New(codes.FailedPrecondition, "not now: ünïcode 100%").WithDetails(&demo.Response{Message: "detail"})
		return nil, st.Err()
	case "block":
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	case "metadata":
		md, _ := metadata.FromIncomingContext(ctx)
		_ = grpc.SetHeader(ctx, metadata.Pairs("x-header", "h1"))
		_ = grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "t1"))
		return &demo.Response{Message: strings.Join(md.Get("user-id"), ",")}, nil
	}
	return &demo.Response{Message: req.Message, ServedBy: "kit"}, nil
}

// serveGRPC runs a gRPC target on a loopback port until the test ends.
func serveGRPC(t *testing.T, register func(*grpc.Server)) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	register(srv)
	reflection.Register(srv)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return lis.Addr().String()
}

// e2e is a vRPC server and client on the machine's Mosquitto, with topics
// and a server name of their own: target "demo" is the demo server,
// "kit" the target above.
type e2e struct {
	client *vclient.Client
}

func startE2E(t *testing.T) *e2e {
	t.Helper()
	needBroker(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	demoSrv := demoserver.Serve(lis, "demo-1")
	t.Cleanup(demoSrv.Stop)
	kitAddr := serveGRPC(t, func(s *grpc.Server) { demo.RegisterDemoServer(s, kit{}) })

	bus := rpcbus.Config{Type: "mqtt", Brokers: []string{brokerAddr}, Settings: testSettings()}
	prefix := name(t, "vrpc")
	cfg := &vrpc.Config{
		Name:   strings.ReplaceAll(name(t, "server"), ".", "-"),
		Port:   -1,
		RpcBus: bus,
		Targets: map[string]vrpc.Target{
			"demo": {Endpoint: lis.Addr().String(), Timeout: "30s"},
			"kit":  {Endpoint: kitAddr, Timeout: "30s"},
		},
	}
	cfg.Topics.Request, cfg.Topics.Response = prefix+".requests", prefix+".responses"
	srv, err := vserver.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Start() }()
	select {
	case <-srv.Ready():
	case err := <-errc:
		t.Fatalf("server did not start: %v", err)
	}
	t.Cleanup(func() {
		srv.Stop()
		if err := <-errc; err != nil {
			t.Errorf("Start returned %v after Stop", err)
		}
	})

	ccfg := vclient.Config{ClientID: "e2e-client", RpcBus: bus}
	ccfg.Topics.Request, ccfg.Topics.Response = cfg.Topics.Request, cfg.Topics.Response
	c, err := vclient.New(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("client Close: %v", err)
		}
	})
	return &e2e{client: c}
}

func (e *e2e) ping(ctx context.Context, target, msg string, opts ...grpc.CallOption) (*demo.Response, error) {
	return demo.NewDemoClient(vclient.NewConn(e.client, target)).Ping(ctx, &demo.Request{Message: msg}, opts...)
}

// TestEndToEnd runs vRPC over the MQTT bus: a vRPC server forwarding to
// real gRPC targets, a vRPC client calling them through the broker.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	e := startE2E(t)
	ctx := ctxFor(t, time.Minute)

	t.Run("Call", func(t *testing.T) {
		var header metadata.MD
		resp, err := e.ping(ctx, "demo", "hello", grpc.Header(&header))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Message != "hello" || resp.ServedBy != "demo-1" || header.Get("x-served-by")[0] != "demo-1" {
			t.Fatalf("got %v, header %v", resp, header)
		}
	})

	t.Run("TargetStatus", func(t *testing.T) {
		// The demo server refuses an empty message.
		_, err := e.ping(ctx, "demo", "")
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || st.Message() != "message must not be empty" {
			t.Fatalf("got %v, want the demo's INVALID_ARGUMENT", err)
		}
		_, err = e.ping(ctx, "kit", "error")
		st := status.Convert(err)
		if st.Code() != codes.FailedPrecondition || st.Message() != "not now: ünïcode 100%" {
			t.Fatalf("got code %v message %q", st.Code(), st.Message())
		}
		if d := st.Details(); len(d) != 1 || d[0].(*demo.Response).Message != "detail" {
			t.Fatalf("details %v", d)
		}
	})

	t.Run("MetadataAndHeaders", func(t *testing.T) {
		mctx := metadata.AppendToOutgoingContext(ctx, "user-id", "12345", "user-id", "67890")
		var header, trailer metadata.MD
		resp, err := e.ping(mctx, "kit", "metadata", grpc.Header(&header), grpc.Trailer(&trailer))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Message != "12345,67890" || header.Get("x-header")[0] != "h1" || trailer.Get("x-trailer")[0] != "t1" {
			t.Fatalf("got %q, header %v, trailer %v", resp.Message, header, trailer)
		}
	})

	t.Run("DeadlineExceeded", func(t *testing.T) {
		dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		_, err := e.ping(dctx, "kit", "block")
		if status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("want DEADLINE_EXCEEDED, got %v", err)
		}
	})

	// Mosquitto answers a request to a topic nobody consumes with PUBACK
	// reason code 0x10, so an unknown target fails at once with
	// UNIMPLEMENTED. (On a broker that does not send 0x10 the request
	// would be dropped and the call end with DEADLINE_EXCEEDED.)
	t.Run("UnknownTarget", func(t *testing.T) {
		_, err := e.ping(ctx, "nosuch", "x")
		if status.Code(err) != codes.Unimplemented || !strings.Contains(err.Error(), "nosuch") {
			t.Fatalf("want UNIMPLEMENTED naming the target, got %v", err)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		const n = 200
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				msg := fmt.Sprintf("call-%d", i)
				resp, err := e.ping(ctx, "demo", msg)
				if err == nil && resp.Message != msg {
					err = fmt.Errorf("call %d answered %q", i, resp.Message)
				}
				if err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}
