package redis_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/nextpkg/vrpc/internal/vtest"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/redis"
)

// TestTLS: against a redis-server of the test's own that speaks only TLS
// and asks for a client certificate, the bus with tls_ca_file,
// tls_cert_file and tls_key_file carries messages; without a client
// certificate, or without trusting the server's, Ping fails.
func TestTLS(t *testing.T) {
	t.Parallel()
	cert, key := vtest.SelfSignedFiles(t)
	dir, addr := t.TempDir(), vtest.FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	vtest.StartProcess(t, dir, addr, "redis-server", "--port", "0", "--tls-port", port, "--bind", "127.0.0.1",
		"--tls-cert-file", cert, "--tls-key-file", key, "--tls-ca-cert-file", cert, "--tls-auth-clients", "yes",
		"--save", "", "--appendonly", "no", "--dir", dir)

	open := func(set map[string]any) *redis.Bus {
		set["dial_timeout"] = "2s"
		b, err := redis.New(rpcbus.Config{Type: "redis", Brokers: []string{addr}, Settings: set})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	b := open(map[string]any{"tls_ca_file": cert, "tls_cert_file": cert, "tls_key_file": key})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got := make(chan string, 1)
	sub, err := b.Subscribe(ctx, rpcbus.SubscribeOptions{Topics: []string{"tls.topic"}, Group: "g"},
		func(d *rpcbus.Delivery) { got <- string(d.Value); d.Ack() })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close(ctx)
	if err := b.Publish(ctx, "tls.topic", &rpcbus.Message{Value: []byte("over tls")}); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-got:
		if v != "over tls" {
			t.Errorf("got %q", v)
		}
	case <-ctx.Done():
		t.Fatal("no delivery over TLS within 30s")
	}

	for name, set := range map[string]map[string]any{
		"no client certificate":      {"tls_ca_file": cert},
		"server's CA not trusted":    {"tls": true, "tls_cert_file": cert, "tls_key_file": key},
		"plain text to a TLS server": {},
	} {
		pctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		if err := open(set).Ping(pctx); err == nil {
			t.Errorf("%s: Ping succeeded", name)
		}
		cancel()
	}
}
