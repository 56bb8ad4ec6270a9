package vtest

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/example/demo/demoserver"
)

// Names the suite's targets report in served_by (and the demo target in
// its x-served-by header). The probes of single cases have names of their
// own.
const (
	demoName  = "demo-target"
	probeName = "probe-target"
)

// statusMessage has non-ASCII characters and characters gRPC
// percent-encodes on the wire; it must reach the caller unchanged.
const statusMessage = "héllo, 世界: 100% \"quoted\" \t\n€ end"

// binTrailer is the value of the probe's binary trailer x-bin.
var binTrailer = string([]byte{0, 1, 2})

// probe is a gRPC target for what the demo target cannot show. Ping's
// behaviour depends on the request's message:
//
//	"error"     fails with FAILED_PRECONDITION, statusMessage and a detail
//	"block"     blocks until the call's context ends or release is closed
//	"deadline"  answers with its context's deadline in Unix nanoseconds
//	"metadata"  answers with the incoming "user-id" values, and sets the
//	            header x-header: h1, h2 and the trailers x-trailer: t1 and
//	            x-bin: binTrailer
//	anything else is echoed
//
// It reports its name in served_by and counts how often it executed each
// message.
type probe struct {
	demo.UnimplementedDemoServer
	name    string
	release chan struct{}
	once    sync.Once

	mu   sync.Mutex
	seen map[string]int // message -> times executed
}

// Ping implements demo.DemoServer.
func (p *probe) Ping(ctx context.Context, req *demo.Request) (*demo.Response, error) {
	p.mu.Lock()
	p.seen[req.Message]++
	p.mu.Unlock()
	switch req.Message {
	case "error":
		st, err := status.New(codes.FailedPrecondition, statusMessage).WithDetails(&demo.Response{Message: "detail", ServedBy: p.name})
		if err != nil {
			return nil, status.Errorf(codes.Internal, "probe: attaching the detail: %v", err)
		}
		return nil, st.Err()
	case "block":
		select {
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		case <-p.release:
		}
	case "deadline":
		d, ok := ctx.Deadline()
		if !ok {
			return &demo.Response{Message: "none", ServedBy: p.name}, nil
		}
		return &demo.Response{Message: strconv.FormatInt(d.UnixNano(), 10), ServedBy: p.name}, nil
	case "metadata":
		md, _ := metadata.FromIncomingContext(ctx)
		if err := grpc.SetHeader(ctx, metadata.Pairs("x-header", "h1", "x-header", "h2")); err != nil {
			return nil, err
		}
		if err := grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "t1", "x-bin", binTrailer)); err != nil {
			return nil, err
		}
		return &demo.Response{Message: strings.Join(md.Get("user-id"), ","), ServedBy: p.name}, nil
	}
	return &demo.Response{Message: req.Message, ServedBy: p.name}, nil
}

// unblock ends every "block" call, now and later.
func (p *probe) unblock() { p.once.Do(func() { close(p.release) }) }

// executed returns how often the probe executed msg.
func (p *probe) executed(msg string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen[msg]
}

// executedPrefix returns how many calls the probe executed whose message
// starts with prefix; with "" it is every call it executed.
func (p *probe) executedPrefix(prefix string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for msg, times := range p.seen {
		if strings.HasPrefix(msg, prefix) {
			n += times
		}
	}
	return n
}

// startProbe runs a probe named name, with server reflection, on a
// loopback port until the test ends.
func startProbe(t testing.TB, name string) (*probe, string) {
	t.Helper()
	lis := listen(t)
	p := &probe{name: name, release: make(chan struct{}), seen: map[string]int{}}
	srv := grpc.NewServer()
	demo.RegisterDemoServer(srv, p)
	reflection.Register(srv) // lets the vRPC server resolve short method names
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return p, lis.Addr().String()
}

// StartDemo runs the demo target, reporting name in served_by, on a
// loopback port until the test ends, and returns its address.
func StartDemo(t testing.TB, name string) string {
	t.Helper()
	lis := listen(t)
	srv := demoserver.Serve(lis, name)
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return lis
}
