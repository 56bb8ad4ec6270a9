package vclient_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nextpkg/vrpc/internal/vtest"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/embedded"
	"github.com/nextpkg/vrpc/vclient"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestNewWithoutBus: with no broker, New gives up after timeout.connect
// with an error that wraps rpcbus.ErrUnavailable and names the bus, its
// address and the timeout.
func TestNewWithoutBus(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	cfg := vclient.Config{ClientID: "no-bus", RpcBus: rpcbus.Config{Type: "kafka", Brokers: []string{addr}}}
	cfg.Timeout.Connect = 300 * time.Millisecond
	start := time.Now()
	c, err := vclient.New(cfg)
	if err == nil {
		c.Close()
		t.Fatal("New connected to nothing")
	}
	if !rpcbus.Unreachable(err) {
		t.Errorf("New's error does not wrap rpcbus.ErrUnavailable: %v", err)
	}
	for _, want := range []string{"kafka bus at " + addr, "timeout.connect 300ms", "connection refused"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("New's error does not say %q: %v", want, err)
		}
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("New took %v to give up with timeout.connect 300ms", took)
	}
}

// TestNewWaitsForBus: with WithWaitForBus, New waits for a broker that
// starts later, and a stop (its context) ends the wait.
func TestNewWaitsForBus(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	cfg := vclient.Config{ClientID: "waits", RpcBus: rpcbus.Config{Type: "kafka", Brokers: []string{addr}}}
	cfg.Timeout.Connect = 100 * time.Millisecond // not what bounds the wait
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs vtest.Buffer
	type opened struct {
		c   *vclient.Client
		err error
	}
	done := make(chan opened, 1)
	go func() {
		c, err := vclient.New(cfg, vclient.WithWaitForBus(ctx), vclient.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
		done <- opened{c, err}
	}()
	time.Sleep(500 * time.Millisecond) // past timeout.connect
	select {
	case o := <-done:
		t.Fatalf("New returned (%v) with the broker down; want it to wait", o.err)
	default:
	}
	b, err := embedded.Start(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	select {
	case o := <-done:
		if o.err != nil {
			t.Fatalf("New once the broker started: %v", o.err)
		}
		o.c.Close()
	case <-time.After(time.Minute):
		t.Fatal("New did not return within 1m of the broker's start")
	}
	if !strings.Contains(logs.String(), "waiting for the kafka bus at "+addr) {
		t.Errorf("the log does not say what New waited for:\n%s", logs.String())
	}

	// Never a broker: the context ends the wait.
	ctx2, cancel2 := context.WithCancel(context.Background())
	cfg.RpcBus.Brokers = []string{freeAddr(t)}
	go func() {
		c, err := vclient.New(cfg, vclient.WithWaitForBus(ctx2), vclient.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
		done <- opened{c, err}
	}()
	time.Sleep(300 * time.Millisecond)
	cancel2()
	select {
	case o := <-done:
		if o.err == nil || !errors.Is(o.err, context.Canceled) {
			t.Fatalf("New after its wait was cancelled: %v; want context.Canceled", o.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("New did not return within 30s of its wait's end")
	}
}
