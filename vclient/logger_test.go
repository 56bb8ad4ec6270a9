package vclient_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nextpkg/vrpc/internal/vtest"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vclient"
)

// TestWithLogger: with debug on, the client logs each call through the
// logger given to it, not slog.Default().
func TestWithLogger(t *testing.T) {
	t.Parallel()
	var buf vtest.Buffer
	busCfg := rpcbus.Config{Type: "memory", Brokers: []string{"with-logger-" + t.Name()}}
	bus, err := rpcbus.New(busCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	// A consumer that takes the request and never answers: the call ends
	// at its deadline, and the client logs it.
	sub, err := bus.Subscribe(context.Background(), rpcbus.SubscribeOptions{Topics: []string{"vrpc.requests.nobody"}, Group: "silent", MaxInFlight: 1},
		func(d *rpcbus.Delivery) { d.Ack() })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close(context.Background())
	c, err := vclient.New(vclient.Config{ClientID: "with-logger", RpcBus: busCfg, Debug: true},
		vclient.WithLogger(slog.New(slog.NewTextHandler(&buf, nil))), vclient.WithBus(bus))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Logger() == slog.Default() {
		t.Error("Logger() is slog.Default(), not the one given")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := c.Call(ctx, "nobody", "/demo.Demo/Ping", nil, nil); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("a call no one answers: %v, want DEADLINE_EXCEEDED", err)
	}
	if out := buf.String(); !strings.Contains(out, "vrpc: call with-logger-") || !strings.Contains(out, "nobody /demo.Demo/Ping") {
		t.Errorf("the client's logger got:\n%s", out)
	}
}
