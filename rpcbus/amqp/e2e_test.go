package amqp_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
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

// statusMessage has non-ASCII and characters gRPC percent-encodes on the
// wire; it must reach the caller unchanged.
const statusMessage = "héllo, 世界: 100% \"quoted\""

// custom is a tiny gRPC target beside the demo: "error" fails with a
// status carrying a detail, "block" blocks until the call's context ends,
// "metadata" answers with the incoming user-id and sets a header and a
// trailer; anything else is echoed.
type custom struct {
	demo.UnimplementedDemoServer
	calls atomic.Int64
}

func (c *custom) Ping(ctx context.Context, req *demo.Request) (*demo.Response, error) {
	c.calls.Add(1)
	switch req.Message {
	case "error":
		st, _ := status.New(codes.FailedPrecondition, statusMessage).WithDetails(&demo.Response{Message: "detail"})
		return nil, st.Err()
	case "block":
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	case "metadata":
		md, _ := metadata.FromIncomingContext(ctx)
		_ = grpc.SetHeader(ctx, metadata.Pairs("x-header", "h1", "x-header", "h2"))
		_ = grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "t1", "x-bin", string([]byte{0, 1, 2})))
		return &demo.Response{Message: strings.Join(md.Get("user-id"), ",")}, nil
	}
	return &demo.Response{Message: req.Message}, nil
}

// serve runs a gRPC server on a loopback port until t ends.
func serve(t *testing.T, register func(*grpc.Server)) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	register(srv)
	reflection.Register(srv) // lets the vRPC server resolve short method names
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return lis.Addr().String()
}

// TestEndToEnd runs vRPC over RabbitMQ: the demo gRPC target and a custom
// one behind a vRPC server, and a vRPC client, each with a bus of its own
// on the machine's broker.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	s := newScope(t)
	bus := rpcbus.Config{Type: "amqp", Brokers: []string{brokerAddr}, Settings: s.settings(nil)}
	prefix := unique("e2e")
	demoLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	demoSrv := demoserver.Serve(demoLis, "demo-1")
	t.Cleanup(demoSrv.Stop)
	tg := &custom{}
	customAddr := serve(t, func(srv *grpc.Server) { demo.RegisterDemoServer(srv, tg) })

	cfg := &vrpc.Config{
		Name:   "e2e-server",
		Port:   -1,
		RpcBus: bus,
		Targets: map[string]vrpc.Target{
			"demo":   {Endpoint: demoLis.Addr().String()},
			"custom": {Endpoint: customAddr},
		},
	}
	cfg.Topics.Request, cfg.Topics.Response = prefix+".requests", prefix+".responses"
	for target := range cfg.Targets {
		s.addQueue(cfg.Topics.Request + "." + target + ":" + cfg.Name)
	}
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
	demoConn, customConn := vclient.NewConn(c, "demo"), vclient.NewConn(c, "custom")
	ping := func(ctx context.Context, conn grpc.ClientConnInterface, msg string, opts ...grpc.CallOption) (*demo.Response, error) {
		return demo.NewDemoClient(conn).Ping(ctx, &demo.Request{Message: msg}, opts...)
	}

	t.Run("call", func(t *testing.T) {
		var header metadata.MD
		resp, err := ping(ctxFor(t, 30*time.Second), demoConn, "hello", grpc.Header(&header))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Message != "hello" || resp.ServedBy != "demo-1" {
			t.Errorf("reply %+v, want hello from demo-1", resp)
		}
		if got := header.Get("x-served-by"); len(got) != 1 || got[0] != "demo-1" {
			t.Errorf("header x-served-by = %q, want [demo-1]", got)
		}
		// Short method names and JSON payloads go through as well.
		r, err := c.Call(ctxFor(t, 30*time.Second), "demo", "Ping", []byte(`{"message": "json"}`), nil)
		if err != nil || string(r.Payload) != `{"message":"json","servedBy":"demo-1"}` {
			t.Errorf("JSON call: %s, %v", r.GetPayload(), err)
		}
	})

	t.Run("status", func(t *testing.T) {
		_, err := ping(ctxFor(t, 30*time.Second), demoConn, "")
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || st.Message() != "message must not be empty" {
			t.Errorf("demo's empty message: got %v, want INVALID_ARGUMENT", err)
		}
		_, err = ping(ctxFor(t, 30*time.Second), customConn, "error")
		st := status.Convert(err)
		if st.Code() != codes.FailedPrecondition || st.Message() != statusMessage {
			t.Fatalf("got code %v message %q, want FAILED_PRECONDITION %q", st.Code(), st.Message(), statusMessage)
		}
		if ds := st.Details(); len(ds) != 1 {
			t.Errorf("got %d details, want 1", len(ds))
		} else if d, ok := ds[0].(*demo.Response); !ok || d.Message != "detail" {
			t.Errorf("detail: got %#v", ds[0])
		}
	})

	t.Run("metadata", func(t *testing.T) {
		ctx := metadata.AppendToOutgoingContext(ctxFor(t, 30*time.Second), "user-id", "12345", "user-id", "67890")
		var header, trailer metadata.MD
		resp, err := ping(ctx, customConn, "metadata", grpc.Header(&header), grpc.Trailer(&trailer))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Message != "12345,67890" {
			t.Errorf("target saw user-id %q, want 12345,67890", resp.Message)
		}
		if got := header.Get("x-header"); len(got) != 2 || got[0] != "h1" || got[1] != "h2" {
			t.Errorf("header x-header = %q (all: %v)", got, header)
		}
		if got := trailer.Get("x-trailer"); len(got) != 1 || got[0] != "t1" {
			t.Errorf("trailer x-trailer = %q (all: %v)", got, trailer)
		}
		if got := trailer.Get("x-bin"); len(got) != 1 || got[0] != string([]byte{0, 1, 2}) {
			t.Errorf("trailer x-bin = %q", got)
		}
	})

	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := ping(ctx, customConn, "block")
		if status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("call to a blocking target: got %v, want DEADLINE_EXCEEDED", err)
		}
	})

	t.Run("unknown target", func(t *testing.T) {
		// No group has a queue on its topic, so the broker returns the
		// request and the client knows at once.
		_, err := ping(ctxFor(t, 30*time.Second), vclient.NewConn(c, "nosuch"), "x")
		if status.Code(err) != codes.Unimplemented || !strings.Contains(err.Error(), "nosuch") {
			t.Errorf("got %v, want UNIMPLEMENTED naming the target", err)
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		const n = 200
		before := tg.calls.Load()
		ctx := ctxFor(t, 60*time.Second)
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				msg := fmt.Sprintf("call-%d", i)
				resp, err := ping(ctx, customConn, msg)
				if err == nil && resp.Message != msg {
					err = fmt.Errorf("reply %q to %q", resp.Message, msg)
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
		if got := tg.calls.Load() - before; got != n {
			t.Errorf("the target executed %d calls, want %d", got, n)
		}
	})
}
