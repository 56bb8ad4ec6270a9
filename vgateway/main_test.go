package vgateway_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/internal/vtest"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vclient"
	"github.com/nextpkg/vrpc/vgateway"
)

func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.DiscardHandler))
	// go-zero starts goroutines from init for the life of the process.
	goleak.VerifyTestMain(m, goleak.IgnoreCurrent())
}

// statusMessage has non-ASCII and characters gRPC percent-encodes on the
// wire; it must reach the caller unchanged.
const statusMessage = "héllo, 世界: 100% \"quoted\" \t\n€ end"

// target is a real grpc-go service behind vRPC: demo.Demo, whose Ping's
// behaviour depends on the request's message, and grpc.testing.TestService
// (EmptyCall and UnaryCall answer; its streaming methods would too, were
// they ever reached). Every call echoes the "x-echo" request header as a
// response header.
//
//	"error"      fails with FAILED_PRECONDITION, statusMessage and a detail
//	"block"      blocks until the call's context ends or the test ends
//	             (also "block-cancel")
//	"deadline"   answers with its context's deadline (UnixNano as a Duration)
//	"metadata"   answers with the incoming "user-id"; sends headers x-header
//	             and x-echo-bin (the incoming x-bin) and trailers x-trailer
//	             and x-trailer-bin
//	"big-reply"  answers with a message over 4 MiB
//	anything else is echoed, with served_by unless it is over 1 MiB
type target struct {
	demo.UnimplementedDemoServer
	testgrpc.UnimplementedTestServiceServer
	name    string
	calls   atomic.Int64
	release chan struct{}
	once    sync.Once

	mu   sync.Mutex
	seen map[string]int // message -> calls
}

func (tg *target) unblock() { tg.once.Do(func() { close(tg.release) }) }

func (tg *target) executed(msg string) int {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return tg.seen[msg]
}

func (tg *target) Ping(ctx context.Context, req *demo.Request) (*demo.Response, error) {
	tg.calls.Add(1)
	tg.mu.Lock()
	tg.seen[req.Message]++
	tg.mu.Unlock()
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("x-echo"); len(v) > 0 {
		_ = grpc.SetHeader(ctx, metadata.MD{"x-echo": v})
	}
	switch req.Message {
	case "error":
		st, _ := status.New(codes.FailedPrecondition, statusMessage).WithDetails(&demo.Response{Message: "detail", ServedBy: tg.name})
		return nil, st.Err()
	case "block", "block-cancel":
		select {
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		case <-tg.release:
		}
	case "deadline":
		d, ok := ctx.Deadline()
		if !ok {
			return &demo.Response{Message: "none"}, nil
		}
		return &demo.Response{Message: time.Duration(d.UnixNano()).String(), ServedBy: tg.name}, nil
	case "metadata":
		_ = grpc.SetHeader(ctx, metadata.MD{"x-header": {"h1", "h2"}, "x-echo-bin": md.Get("x-bin")})
		_ = grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "t1", "x-trailer-bin", string([]byte{0, 1, 2, 0xff})))
		return &demo.Response{Message: strings.Join(md.Get("user-id"), ","), ServedBy: tg.name}, nil
	case "big-reply":
		return &demo.Response{Message: strings.Repeat("r", 4<<20)}, nil
	}
	if len(req.Message) > 1<<20 {
		return &demo.Response{Message: req.Message}, nil
	}
	return &demo.Response{Message: req.Message, ServedBy: tg.name}, nil
}

func (tg *target) EmptyCall(context.Context, *testgrpc.Empty) (*testgrpc.Empty, error) {
	tg.calls.Add(1)
	return &testgrpc.Empty{}, nil
}

func (tg *target) UnaryCall(_ context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	tg.calls.Add(1)
	return &testgrpc.SimpleResponse{Payload: req.GetPayload(), Hostname: tg.name}, nil
}

// StreamingOutputCall sends one message per response parameter, of the
// size it asks for.
func (tg *target) StreamingOutputCall(req *testgrpc.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testgrpc.StreamingOutputCallResponse]) error {
	tg.calls.Add(1)
	for _, p := range req.GetResponseParameters() {
		if err := stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: make([]byte, p.GetSize())}}); err != nil {
			return err
		}
	}
	return nil
}

// StreamingInputCall answers with the sum of the payload sizes of every
// message the caller sent.
func (tg *target) StreamingInputCall(stream grpc.ClientStreamingServer[testgrpc.StreamingInputCallRequest, testgrpc.StreamingInputCallResponse]) error {
	tg.calls.Add(1)
	sum := 0
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(&testgrpc.StreamingInputCallResponse{AggregatedPayloadSize: int32(sum)})
		}
		if err != nil {
			return err
		}
		sum += len(req.GetPayload().GetBody())
	}
}

// FullDuplexCall answers each message as it comes, as StreamingOutputCall
// does, until the caller half-closes.
func (tg *target) FullDuplexCall(stream grpc.BidiStreamingServer[testgrpc.StreamingOutputCallRequest, testgrpc.StreamingOutputCallResponse]) error {
	tg.calls.Add(1)
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		for _, p := range req.GetResponseParameters() {
			if err := stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: make([]byte, p.GetSize())}}); err != nil {
				return err
			}
		}
	}
}

// startTarget runs a target on a loopback port until the test ends, with
// server reflection when withReflection.
func startTarget(t *testing.T, name string, withReflection bool) (*target, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tg := &target{name: name, release: make(chan struct{}), seen: map[string]int{}}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(8<<20), grpc.MaxSendMsgSize(8<<20))
	demo.RegisterDemoServer(srv, tg)
	testgrpc.RegisterTestServiceServer(srv, tg)
	if withReflection {
		reflection.Register(srv)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return tg, lis.Addr().String()
}

// env is one deployment: an in-process Kafka, targets t1 and t2 (with
// reflection) and plain (without), a vRPC server for the three, and a
// gateway whose client routes demo.Demo and the grpc.testing package to
// t1 and the other package to t2.
type env struct {
	bus       rpcbus.Config
	t1, t2    *target
	plain     *target
	client    *vclient.Client // the gateway's
	gw        *vgateway.Gateway
	addr      string
	conn      *grpc.ClientConn // to the gateway
	served    chan error
	stopped   bool
	stopGuard sync.Mutex
}

var services = map[string]string{
	"demo.Demo":     "t1",
	"grpc.testing.": "t1",
	"other.":        "t2",
}

// newEnv starts an env; each of withServer changes the server's config.
func newEnv(t *testing.T, withServer ...func(*vrpc.Config)) *env {
	t.Helper()
	e := &env{bus: vtest.StartKafka(t)}
	var a1, a2, a3 string
	e.t1, a1 = startTarget(t, "t1", true)
	e.t2, a2 = startTarget(t, "t2", true)
	e.plain, a3 = startTarget(t, "plain", false)
	cfg := vtest.ServerConfig(e.bus, map[string]vrpc.Target{
		"t1": {Endpoint: a1}, "t2": {Endpoint: a2}, "plain": {Endpoint: a3},
	})
	cfg.MaxMessageSize = 8 << 20 // so that the gateway is what refuses a large message
	for _, f := range withServer {
		f(cfg)
	}
	vtest.StartServer(t, cfg)
	t.Cleanup(func() { e.t1.unblock(); e.t2.unblock(); e.plain.unblock() }) // lets the server drain at once

	c, err := vclient.New(vclient.Config{ClientID: "gateway", RpcBus: e.bus, Services: services})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("client Close: %v", err)
		}
	})
	e.client = c
	e.gw, err = vgateway.New(c, vgateway.Config{})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = lis.Addr().String()
	e.served = make(chan error, 1)
	go func() { e.served <- e.gw.Serve(lis) }()
	t.Cleanup(func() { e.stop(t) })

	e.conn, err = grpc.NewClient(e.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(8<<20), grpc.MaxCallSendMsgSize(8<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.conn.Close() })
	return e
}

// stop stops the gateway and checks that Serve returned nil.
func (e *env) stop(t *testing.T) {
	e.stopGuard.Lock()
	defer e.stopGuard.Unlock()
	if e.stopped {
		return
	}
	e.stopped = true
	e.gw.Stop()
	if err := <-e.served; err != nil {
		t.Errorf("Serve returned %v after Stop", err)
	}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func ping(ctx context.Context, conn grpc.ClientConnInterface, msg string, opts ...grpc.CallOption) (*demo.Response, error) {
	return demo.NewDemoClient(conn).Ping(ctx, &demo.Request{Message: msg}, opts...)
}

// eventually polls cond until it holds or 10 s have passed.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
