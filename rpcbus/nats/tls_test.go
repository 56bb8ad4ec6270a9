package nats_test

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nextpkg/vrpc/internal/vtest"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/nats"
)

// TestTLS: against a nats-server of the test's own that speaks only TLS
// and verifies client certificates, the bus with tls_ca_file,
// tls_cert_file and tls_key_file connects, publishes and consumes; without
// a client certificate, or without trusting the server's, it cannot
// connect.
func TestTLS(t *testing.T) {
	t.Parallel()
	cert, key := vtest.SelfSignedFiles(t)
	dir, addr := t.TempDir(), vtest.FreeAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	vtest.StartProcess(t, dir, addr, "nats-server", "-a", host, "-p", port, "-js", "-sd", dir,
		"--tlsverify", "--tlscert", cert, "--tlskey", key, "--tlscacert", cert)

	set := map[string]any{"tls_ca_file": cert, "tls_cert_file": cert, "tls_key_file": key, "connect_timeout": "5s"}
	b, err := nats.New(rpcbus.Config{Type: "nats", Brokers: []string{"nats://" + addr}, Settings: set})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	topic := "tls." + strings.ReplaceAll(t.Name(), "/", "_")
	got := make(chan string, 1)
	sub, err := b.Subscribe(ctxFor(t, 30*time.Second), rpcbus.SubscribeOptions{Topics: []string{topic}, Group: "g"},
		func(d *rpcbus.Delivery) { got <- string(d.Value); d.Ack() })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close(ctxFor(t, 30*time.Second))
	if err := b.Publish(ctxFor(t, 30*time.Second), topic, &rpcbus.Message{Value: []byte("over tls")}); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-got:
		if v != "over tls" {
			t.Errorf("got %q", v)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no delivery over TLS within 30s")
	}

	for name, set := range map[string]map[string]any{
		"no client certificate":      {"tls_ca_file": cert, "connect_timeout": "2s"},
		"server's CA not trusted":    {"tls": true, "tls_cert_file": cert, "tls_key_file": key, "connect_timeout": "2s"},
		"plain text to a TLS server": {"connect_timeout": "2s"},
	} {
		nb, err := nats.New(rpcbus.Config{Type: "nats", Brokers: []string{"nats://" + addr}, Settings: set})
		if err == nil {
			nb.Close()
			t.Errorf("%s: connected", name)
		} else if errors.Is(err, rpcbus.ErrClosed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
