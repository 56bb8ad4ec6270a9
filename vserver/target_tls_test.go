package vserver_test

import (
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/example/demo/demoserver"
	"github.com/nextpkg/vrpc/internal/vtest"
	"github.com/nextpkg/vrpc/vclient"
	"github.com/nextpkg/vrpc/vserver"
)

// TestTargetTLS: a target that serves TLS only is reached with tls_ca_file
// trusting its certificate; without TLS, or without trusting it, calls fail
// with UNAVAILABLE; a bad file stops the server from starting, naming it.
func TestTargetTLS(t *testing.T) {
	t.Parallel()
	cert, caFile := vtest.SelfSigned(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewServerTLSFromCert(&cert)))
	demo.RegisterDemoServer(srv, &demoserver.Server{Name: "tls-target"})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	addr := lis.Addr().String()

	busCfg := startKafka(t)
	startServer(t, vtest.ServerConfig(busCfg, map[string]vrpc.Target{
		"trusted":   {Endpoint: addr, Settings: map[string]any{"tls_ca_file": caFile}},
		"plain":     {Endpoint: addr},
		"untrusted": {Endpoint: addr, Settings: map[string]any{"tls": true}},
	}))
	c := newClient(t, busCfg, "tls-caller")
	ctx := testContext(t)
	for target, want := range map[string]codes.Code{"trusted": codes.OK, "plain": codes.Unavailable, "untrusted": codes.Unavailable} {
		resp, err := demo.NewDemoClient(vclient.NewConn(c, target)).Ping(ctx, &demo.Request{Message: "over TLS"})
		if got := status.Code(err); got != want {
			t.Errorf("%s: %v, want %v", target, err, want)
		} else if want == codes.OK && resp.ServedBy != "tls-target" {
			t.Errorf("%s: served by %q", target, resp.ServedBy)
		}
	}

	_, err = vserver.NewServer(vtest.ServerConfig(busCfg, map[string]vrpc.Target{
		"demo": {Endpoint: addr, Settings: map[string]any{"tls_ca_file": caFile + ".missing"}},
	}))
	if err == nil || !strings.Contains(err.Error(), "targets.demo.settings.tls_ca_file") {
		t.Errorf("a missing CA file: %v, want an error naming targets.demo.settings.tls_ca_file", err)
	}
}
