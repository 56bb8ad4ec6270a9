package vserver_test

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/example/demo/demoserver"
	"github.com/nextpkg/vrpc/internal/vtest"
	"github.com/nextpkg/vrpc/rpcbus"
)

func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.DiscardHandler)) // also keeps the examples' output to what they print
	goleak.VerifyTestMain(m,
		// Process-lifetime goroutines go-zero starts in package init.
		goleak.IgnoreCurrent(),
	)
}

// startDemo runs the demo gRPC target on a loopback port until the test
// ends and returns its address.
func startDemo(t *testing.T, name string) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := demoserver.Serve(lis, name)
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

var (
	startKafka  = vtest.StartKafka
	startServer = vtest.StartServer
	newClient   = vtest.NewClient
)

func serverConfig(bus rpcbus.Config, endpoint string) *vrpc.Config {
	return vtest.ServerConfig(bus, map[string]vrpc.Target{"demo": {Endpoint: endpoint}})
}

// openBus opens a bus of its own on cfg, closed when the test ends.
func openBus(t *testing.T, cfg rpcbus.Config) rpcbus.Bus {
	t.Helper()
	b, err := rpcbus.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("bus Close: %v", err)
		}
	})
	return b
}

// testContext bounds a test's waits: a generous limit for a loaded
// machine, not a timing assertion.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// startRecordingDemo is startDemo with a unary interceptor in front of the
// demo service, to see what reaches the target.
func startRecordingDemo(t *testing.T, name string, icpt grpc.UnaryServerInterceptor) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(icpt))
	demo.RegisterDemoServer(srv, &demoserver.Server{Name: name})
	reflection.Register(srv) // lets the server resolve short method names
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return lis.Addr().String()
}
