package vserver_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/nextpkg/vrpc/internal/vtest"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vserver"
)

// TestWithLogger: the server logs through the logger given to it, not
// slog.Default().
func TestWithLogger(t *testing.T) {
	t.Parallel()
	var buf vtest.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	srv, err := vserver.NewServer(&vrpc.Config{
		Name:    "with-logger",
		Port:    -1,
		RpcBus:  rpcbus.Config{Type: "memory", Brokers: []string{"with-logger-" + t.Name()}},
		Targets: map[string]vrpc.Target{"demo": {Endpoint: "127.0.0.1:1"}},
	}, vserver.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Start() }()
	<-srv.Ready()
	srv.Stop()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if out := buf.String(); !strings.Contains(out, "vrpc server with-logger serving [vrpc.requests.demo] on memory bus") {
		t.Errorf("the server's logger got:\n%s", out)
	}
}
