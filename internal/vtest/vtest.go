// Package vtest is the shared harness of vRPC's end-to-end tests: an
// in-process Kafka per test, vRPC servers and clients that stop when the
// test ends, and RunEndToEnd, the end-to-end suite every bus passes.
package vtest

import (
	"testing"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/rpcbus"
	_ "github.com/nextpkg/vrpc/rpcbus/all" // the tests pick any bus by rpc_bus.type
	"github.com/nextpkg/vrpc/rpcbus/embedded"
	"github.com/nextpkg/vrpc/vclient"
	"github.com/nextpkg/vrpc/vserver"
)

// StartKafka runs an in-process Kafka for one test, so that parallel tests
// never see each other's topics and groups, and returns the bus
// configuration other "processes" would use to reach it.
func StartKafka(t testing.TB) rpcbus.Config {
	t.Helper()
	e, err := embedded.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return rpcbus.Config{Type: "kafka", Brokers: []string{e.Addr()}}
}

// ServerConfig is a server named test-server, with no admin endpoint,
// forwarding to targets over bus.
func ServerConfig(bus rpcbus.Config, targets map[string]vrpc.Target) *vrpc.Config {
	return &vrpc.Config{Name: "test-server", Port: -1, RpcBus: bus, Targets: targets}
}

// StartServer runs a vRPC server until the test ends, and checks that
// Start returns nil after Stop.
func StartServer(t testing.TB, cfg *vrpc.Config) *vserver.Server {
	t.Helper()
	s, err := vserver.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Start() }()
	select {
	case <-s.Ready():
	case err := <-errc:
		t.Fatalf("server did not start: %v", err)
	}
	t.Cleanup(func() {
		s.Stop()
		if err := <-errc; err != nil {
			t.Errorf("Start returned %v after Stop", err)
		}
	})
	return s
}

// NewClient opens a client with clientID on bus, closed when the test ends.
func NewClient(t testing.TB, bus rpcbus.Config, clientID string) *vclient.Client {
	t.Helper()
	return StartClient(t, vclient.Config{ClientID: clientID, RpcBus: bus})
}

// StartClient opens a client with cfg, closed when the test ends.
func StartClient(t testing.TB, cfg vclient.Config) *vclient.Client {
	t.Helper()
	c, err := vclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("client Close: %v", err)
		}
	})
	return c
}
