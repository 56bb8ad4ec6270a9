package redis_test

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
	"github.com/nextpkg/vrpc/internal/vtest"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vclient"
)

// tinyTarget is a grpc-go service whose Ping depends on the message:
//
//	"error"     fails with FAILED_PRECONDITION and a detail
//	"block"     blocks until the call's context ends
//	"metadata"  answers with the incoming user-id values and sets a header
//	            and a trailer
//	anything else is echoed
type tinyTarget struct {
	demo.UnimplementedDemoServer
}

func (tinyTarget) Ping(ctx context.Context, req *demo.Request) (*demo.Response, error) {
	switch req.Message {
	case "error":
		st, _ := status.New(codes.FailedPrecondition, "not now: 100% busy").WithDetails(&demo.Response{Message: "detail"})
		return nil, st.Err()
	case "block":
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	case "metadata":
		md, _ := metadata.FromIncomingContext(ctx)
		_ = grpc.SetHeader(ctx, metadata.Pairs("x-header", "h1"))
		_ = grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "t1"))
		return &demo.Response{Message: strings.Join(md.Get("user-id"), ","), ServedBy: "tiny"}, nil
	}
	return &demo.Response{Message: req.Message, ServedBy: "tiny"}, nil
}

// serveGRPC runs srv on a loopback port until the test ends and returns
// its address.
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

// TestEndToEnd runs vRPC over the redis bus: a real grpc-go target behind
// a vRPC server, called by a vRPC client, both on the machine's Redis.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	needRedis(t)
	// A key prefix of its own: the test's streams are apart from every
	// other test's, and TestMain deletes them.
	bus := rpcbus.Config{Type: "redis", Brokers: []string{addr},
		Settings: testSettings(map[string]any{"key_prefix": runPrefix + "e2e:"})}

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	demoSrv := demoserver.Serve(lis, "d1")
	t.Cleanup(demoSrv.Stop)
	tiny := serveGRPC(t, func(s *grpc.Server) { demo.RegisterDemoServer(s, tinyTarget{}) })
	vtest.StartServer(t, &vrpc.Config{Name: "redis-e2e", Port: -1, RpcBus: bus, Targets: map[string]vrpc.Target{
		"demo": {Endpoint: lis.Addr().String()},
		"tiny": {Endpoint: tiny},
	}})
	c := vtest.NewClient(t, bus, "e2e-client")
	conn := func(target string) *vclient.Conn { return vclient.NewConn(c, target) }
	ping := func(ctx context.Context, target, msg string, opts ...grpc.CallOption) (*demo.Response, error) {
		return demo.NewDemoClient(conn(target)).Ping(ctx, &demo.Request{Message: msg}, opts...)
	}
	testCtx := func(t *testing.T) context.Context { return ctxFor(t, 30*time.Second) }

	t.Run("call", func(t *testing.T) {
		var header metadata.MD
		resp, err := ping(testCtx(t), "demo", "hello", grpc.Header(&header))
		if err != nil || resp.Message != "hello" || resp.ServedBy != "d1" {
			t.Fatalf("got %v, %v", resp, err)
		}
		if got := header.Get("x-served-by"); len(got) != 1 || got[0] != "d1" {
			t.Fatalf("header x-served-by = %q", got)
		}
	})
	t.Run("status", func(t *testing.T) {
		_, err := ping(testCtx(t), "demo", "")
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || st.Message() != "message must not be empty" {
			t.Fatalf("demo's empty message: got %v", err)
		}
		_, err = ping(testCtx(t), "tiny", "error")
		st := status.Convert(err)
		if st.Code() != codes.FailedPrecondition || st.Message() != "not now: 100% busy" {
			t.Fatalf("got code %v message %q", st.Code(), st.Message())
		}
		if d := st.Details(); len(d) != 1 {
			t.Fatalf("got %d details, want 1", len(d))
		} else if r, ok := d[0].(*demo.Response); !ok || r.Message != "detail" {
			t.Fatalf("detail: got %#v", d[0])
		}
	})
	t.Run("metadata and headers", func(t *testing.T) {
		ctx := metadata.AppendToOutgoingContext(testCtx(t), "user-id", "12345", "user-id", "67890")
		var header, trailer metadata.MD
		resp, err := ping(ctx, "tiny", "metadata", grpc.Header(&header), grpc.Trailer(&trailer))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Message != "12345,67890" {
			t.Fatalf("target saw user-id %q", resp.Message)
		}
		if got := header.Get("x-header"); len(got) != 1 || got[0] != "h1" {
			t.Fatalf("header x-header = %q (all: %v)", got, header)
		}
		if got := trailer.Get("x-trailer"); len(got) != 1 || got[0] != "t1" {
			t.Fatalf("trailer x-trailer = %q (all: %v)", got, trailer)
		}
	})
	t.Run("deadline exceeded", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		if _, err := ping(ctx, "tiny", "block"); status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("want DEADLINE_EXCEEDED, got %v", err)
		}
	})
	t.Run("unknown target", func(t *testing.T) {
		// The bus tells a stream that does not exist (XADD NOMKSTREAM):
		// the caller learns at once, not at its deadline.
		_, err := ping(testCtx(t), "nosuch", "x")
		if status.Code(err) != codes.Unimplemented || !strings.Contains(err.Error(), "nosuch") {
			t.Fatalf("want UNIMPLEMENTED naming the target, got %v", err)
		}
	})
	t.Run("200 concurrent calls", func(t *testing.T) {
		// Half of them from a second client with the same client id: each
		// gets its own replies.
		twin := vclient.NewConn(vtest.NewClient(t, bus, "e2e-client"), "demo")
		ctx := testCtx(t)
		var wg sync.WaitGroup
		errs := make(chan error, 200)
		for i := range 200 {
			wg.Go(func() {
				msg := fmt.Sprintf("call-%d", i)
				cc := conn("demo")
				if i%2 == 1 {
					cc = twin
				}
				resp, err := demo.NewDemoClient(cc).Ping(ctx, &demo.Request{Message: msg})
				if err == nil && resp.Message != msg {
					err = fmt.Errorf("%s got reply %q", msg, resp.Message)
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
