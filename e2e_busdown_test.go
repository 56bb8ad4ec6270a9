package vrpc_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/internal/vtest"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/embedded"
	"github.com/nextpkg/vrpc/vclient"
)

// TestBusDownIsUnavailable: a call made while the broker is gone waits
// for it until its deadline, then fails with UNAVAILABLE (the request was
// never sent, so the caller may try again), not later than the deadline.
func TestBusDownIsUnavailable(t *testing.T) {
	t.Parallel()
	broker, err := embedded.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)
	bus := rpcbus.Config{Type: "kafka", Brokers: []string{broker.Addr()}}
	addr := vtest.StartDemo(t, "t1")
	cfg := vtest.ServerConfig(bus, map[string]vrpc.Target{"demo": {Endpoint: addr}})
	cfg.DrainTimeout = time.Second // its broker is gone when it stops
	vtest.StartServer(t, cfg)
	c := vtest.NewClient(t, bus, "c1")
	conn := vclient.NewConn(c, "demo")
	if _, err := ping(testContext(t), conn, "before"); err != nil {
		t.Fatal(err)
	}

	broker.Close()
	const timeout = 500 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	_, err = ping(ctx, conn, "during")
	took := time.Since(start)
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("want UNAVAILABLE, got %v", err)
	}
	// Not a timing assertion: a bound generous for any machine, to tell
	// "ended at its deadline" from "hung".
	if took > timeout+10*time.Second {
		t.Fatalf("the call took %v with a deadline of %v", took, timeout)
	}
}
