package vgateway_test

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/nextpkg/vrpc/internal/vtest"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vclient"
	"github.com/nextpkg/vrpc/vgateway"
)

// TestTLS: with tls_cert_file, tls_key_file and tls_client_ca_file the
// gateway serves only TLS callers that show a certificate of that CA.
func TestTLS(t *testing.T) {
	t.Parallel()
	cert, key := vtest.SelfSignedFiles(t)
	c, err := vclient.New(vclient.Config{ClientID: "gateway-tls", RpcBus: rpcbus.Config{Type: "memory"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	gw, err := vgateway.New(c, vgateway.Config{TLSCertFile: cert, TLSKeyFile: key, TLSClientCAFile: cert})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- gw.Serve(lis) }()
	defer func() {
		gw.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()

	pem, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, creds credentials.TransportCredentials, wantOK bool) {
		conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		resp, err := healthpb.NewHealthClient(conn).Check(testContext(t), &healthpb.HealthCheckRequest{})
		switch {
		case wantOK && (err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING):
			t.Errorf("%s: health check %v, %v; want SERVING", name, resp, err)
		case !wantOK && err == nil:
			t.Errorf("%s: health check answered", name)
		}
	}
	check("mutual TLS", credentials.NewTLS(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}}), true)
	check("TLS without a client certificate", credentials.NewTLS(&tls.Config{RootCAs: roots}), false)
	check("plain text", insecure.NewCredentials(), false)
}

func TestTLSConfigErrors(t *testing.T) {
	t.Parallel()
	cert, key := vtest.SelfSignedFiles(t)
	for _, tc := range []struct {
		cfg  vgateway.Config
		want string
	}{
		{vgateway.Config{TLSCertFile: cert}, "gateway.tls_key_file"},
		{vgateway.Config{TLSKeyFile: key}, "gateway.tls_cert_file"},
		{vgateway.Config{TLSCertFile: cert, TLSKeyFile: cert}, "gateway.tls_cert_file"},
		{vgateway.Config{TLSClientCAFile: cert}, "gateway.tls_client_ca_file"},
		{vgateway.Config{TLSCertFile: cert, TLSKeyFile: key, TLSClientCAFile: key}, "gateway.tls_client_ca_file"},
	} {
		if err := tc.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error naming %s", tc.cfg, err, tc.want)
		}
	}
}
