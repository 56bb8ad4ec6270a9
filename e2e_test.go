package vrpc_test

import (
	"context"
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
	"google.golang.org/protobuf/proto"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/internal/vtest"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vclient"
	"github.com/nextpkg/vrpc/vserver"
)

// statusMessage has non-ASCII and characters gRPC percent-encodes on the
// wire; it must reach the caller unchanged.
const statusMessage = "héllo, 世界: 100% \"quoted\" \t\n€ end"

// target is a real grpc-go service behind vRPC. Ping's behaviour depends on
// the request's message:
//
//	"error"      fails with FAILED_PRECONDITION, statusMessage and a detail
//	"block"      blocks until the call's context ends or release is closed
//	"deadline"   answers with its context's deadline (UnixNano, base 36)
//	"metadata"   answers with the incoming "user-id" and sets a header and a trailer
//	anything else is echoed
type target struct {
	demo.UnimplementedDemoServer
	name    string
	calls   atomic.Int64
	release chan struct{}

	once sync.Once
	mu   sync.Mutex
	seen map[string]int // message -> times executed
}

// unblock ends every "block" call, now and later.
func (tg *target) unblock() { tg.once.Do(func() { close(tg.release) }) }

func (tg *target) Ping(ctx context.Context, req *demo.Request) (*demo.Response, error) {
	tg.calls.Add(1)
	tg.mu.Lock()
	tg.seen[req.Message]++
	tg.mu.Unlock()
	switch req.Message {
	case "error":
		st, _ := status.New(codes.FailedPrecondition, statusMessage).WithDetails(&demo.Response{Message: "detail", ServedBy: tg.name})
		return nil, st.Err()
	case "block":
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
		md, _ := metadata.FromIncomingContext(ctx)
		_ = grpc.SetHeader(ctx, metadata.Pairs("x-header", "h1", "x-header", "h2"))
		_ = grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "t1", "x-bin", string([]byte{0, 1, 2})))
		return &demo.Response{Message: strings.Join(md.Get("user-id"), ","), ServedBy: tg.name}, nil
	}
	return &demo.Response{Message: req.Message, ServedBy: tg.name}, nil
}

func (tg *target) executed(msg string) int {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return tg.seen[msg]
}

// startTarget runs a target on a loopback port until the test ends.
func startTarget(t *testing.T, name string) (*target, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tg := &target{name: name, release: make(chan struct{}), seen: map[string]int{}}
	srv := grpc.NewServer()
	demo.RegisterDemoServer(srv, tg)
	reflection.Register(srv)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return tg, lis.Addr().String()
}

var (
	startKafka   = vtest.StartKafka
	serverConfig = vtest.ServerConfig
	newClient    = vtest.NewClient
)

func startServer(t *testing.T, cfg *vrpc.Config) *vserver.Server { return vtest.StartServer(t, cfg) }

// setup is the common case: one Kafka, one target "demo", one server, one
// client.
func setup(t *testing.T) (*target, *vserver.Server, *vclient.Client, rpcbus.Config) {
	t.Helper()
	bus := startKafka(t)
	tg, addr := startTarget(t, "t1")
	srv := startServer(t, serverConfig(bus, map[string]vrpc.Target{"demo": {Endpoint: addr}}))
	c := newClient(t, bus, "c1")
	t.Cleanup(tg.unblock) // first: lets the server drain at once
	return tg, srv, c, bus
}

func ping(ctx context.Context, conn grpc.ClientConnInterface, msg string, opts ...grpc.CallOption) (*demo.Response, error) {
	return demo.NewDemoClient(conn).Ping(ctx, &demo.Request{Message: msg}, opts...)
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func protoUnmarshal(b []byte, m proto.Message) error { return proto.Unmarshal(b, m) }

func newServer(cfg *vrpc.Config) (*vserver.Server, error) { return vserver.NewServer(cfg) }

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
