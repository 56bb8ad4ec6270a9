package nats_test

import (
	"strings"
	"testing"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/nats"
)

// TestServerURLs: host:port and nats:// connect to the machine's server;
// tls:// turns TLS on, which its plain listener cannot give, and the error
// carries no password.
func TestServerURLs(t *testing.T) {
	t.Parallel()
	needServer(t)
	hp := hostPort(serverAddr)
	for _, addr := range []string{hp, "nats://" + hp, "NATS://" + hp} {
		b, err := nats.New(rpcbus.Config{Type: "nats", Brokers: []string{addr}, Settings: testSettings()})
		if err != nil {
			t.Errorf("New(%s): %v", addr, err)
			continue
		}
		_ = b.Close()
	}
	addr := "tls://alice:s3cret@" + hp
	b, err := nats.New(rpcbus.Config{Type: "nats", Brokers: []string{addr}, Settings: map[string]any{"connect_timeout": "2s"}})
	if err == nil {
		_ = b.Close()
		t.Fatalf("New(%s) connected to a server without TLS", addr)
	}
	if strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "tls://alice:xxxxx@") {
		t.Errorf("New(%s): %v, want the address with its password redacted", addr, err)
	}
}
