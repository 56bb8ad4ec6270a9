package nats_test

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

// probe is a tiny gRPC target for what the demo target cannot show:
//
//	"error"     fails with FAILED_PRECONDITION and a detail
//	"block"     blocks until the call's context ends
//	"metadata"  answers with the incoming "user-id" values, and sets a
//	            header and a trailer
type probe struct{ demo.UnimplementedDemoServer }

func (probe) Ping(ctx context.Context, req *demo.Request) (*demo.Response, error) {
	switch req.Message {
	case "error":
		st, _ := status.New(codes.FailedPrecondition, "héllo: precondition").WithDetails(&demo.Response{Message: "detail"})
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

func listen(t *testing.T) net.Listener {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return lis
}

// TestEndToEnd runs vRPC over the nats bus: the demo target and the probe
// target behind a vRPC server, called by a vRPC client, each with a bus of
// its own as separate processes would have.
func TestEndToEnd(t *testing.T) {
	needServer(t)
	t.Parallel()
	bus := rpcbus.Config{Type: "nats", Brokers: []string{serverAddr}}
	// Names of this run only: the server's group, its request topics.
	prefix := name(t, "requests")
	t.Cleanup(func() { deleteStreamsUnder(t, prefix) }) // after the server has stopped

	demoLis := listen(t)
	demoSrv := demoserver.Serve(demoLis, "demo-target")
	t.Cleanup(demoSrv.Stop)
	probeLis := listen(t)
	probeSrv := grpc.NewServer()
	demo.RegisterDemoServer(probeSrv, probe{})
	reflection.Register(probeSrv)
	probeDone := make(chan struct{})
	go func() { defer close(probeDone); _ = probeSrv.Serve(probeLis) }()
	t.Cleanup(func() { probeSrv.Stop(); <-probeDone })

	cfg := vtest.ServerConfig(bus, map[string]vrpc.Target{
		"demo":  {Endpoint: demoLis.Addr().String()},
		"probe": {Endpoint: probeLis.Addr().String()},
	})
	cfg.Name = strings.ReplaceAll(prefix, ".", "-")
	cfg.Topics.Request = prefix
	vtest.StartServer(t, cfg)

	ccfg := vclient.Config{ClientID: "e2e", RpcBus: bus}
	ccfg.Topics.Request = prefix
	c, err := vclient.New(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("client Close: %v", err)
		}
	})
	ctx := ctxFor(t, 30*time.Second)
	demoConn, probeConn := demo.NewDemoClient(vclient.NewConn(c, "demo")), demo.NewDemoClient(vclient.NewConn(c, "probe"))

	t.Run("Call", func(t *testing.T) {
		var header metadata.MD
		resp, err := demoConn.Ping(ctx, &demo.Request{Message: "hello"}, grpc.Header(&header))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Message != "hello" || resp.ServedBy != "demo-target" || strings.Join(header.Get("x-served-by"), ",") != "demo-target" {
			t.Errorf("got %v with header %v", resp, header)
		}
	})

	t.Run("Status", func(t *testing.T) {
		// The demo target refuses an empty message.
		_, err := demoConn.Ping(ctx, &demo.Request{})
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || st.Message() != "message must not be empty" {
			t.Errorf("empty message: got %v", err)
		}
		_, err = probeConn.Ping(ctx, &demo.Request{Message: "error"})
		st := status.Convert(err)
		if st.Code() != codes.FailedPrecondition || st.Message() != "héllo: precondition" {
			t.Fatalf("got %v", err)
		}
		if d := st.Details(); len(d) != 1 || d[0].(*demo.Response).GetMessage() != "detail" {
			t.Errorf("details: got %v", d)
		}
	})

	t.Run("Metadata", func(t *testing.T) {
		mctx := metadata.AppendToOutgoingContext(ctx, "user-id", "12345", "user-id", "67890")
		var header, trailer metadata.MD
		resp, err := probeConn.Ping(mctx, &demo.Request{Message: "metadata"}, grpc.Header(&header), grpc.Trailer(&trailer))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Message != "12345,67890" {
			t.Errorf("the target saw user-id %q", resp.Message)
		}
		if got := header.Get("x-header"); strings.Join(got, ",") != "h1,h2" {
			t.Errorf("header x-header = %v", got)
		}
		if got := trailer.Get("x-trailer"); strings.Join(got, ",") != "t1" {
			t.Errorf("trailer x-trailer = %v", got)
		}
		if got := trailer.Get("x-bin"); len(got) != 1 || got[0] != string([]byte{0, 1, 2}) {
			t.Errorf("trailer x-bin = %q", got)
		}
	})

	t.Run("DeadlineExceeded", func(t *testing.T) {
		dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		_, err := probeConn.Ping(dctx, &demo.Request{Message: "block"})
		if status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("want DEADLINE_EXCEEDED, got %v", err)
		}
	})

	// The request topic of an unknown target has no stream: the client
	// learns it at once from the publish, not from its deadline.
	t.Run("UnknownTarget", func(t *testing.T) {
		_, err := demo.NewDemoClient(vclient.NewConn(c, "nosuch")).Ping(ctx, &demo.Request{Message: "x"})
		if status.Code(err) != codes.Unimplemented || !strings.Contains(err.Error(), "nosuch") {
			t.Errorf("want UNIMPLEMENTED naming the target, got %v", err)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		const n = 200
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				msg := fmt.Sprintf("call-%d", i)
				resp, err := demoConn.Ping(ctx, &demo.Request{Message: msg})
				if err == nil && resp.Message != msg {
					err = fmt.Errorf("call %s answered %q", msg, resp.Message)
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
