package vserver_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/rpcbus"
)

// TestDebugRedacts: /debug/vrpc shows the bus's address and settings
// without the password in the URL or the secrets in the settings.
func TestDebugRedacts(t *testing.T) {
	t.Parallel()
	if c, err := net.DialTimeout("tcp", "127.0.0.1:4222", 2*time.Second); err != nil {
		t.Skipf("no NATS server at 127.0.0.1:4222: %v", err)
	} else {
		c.Close()
	}
	// A server without authentication takes any user and password.
	bus := rpcbus.Config{Type: "nats", Brokers: []string{"nats://alice:s3cret-url@127.0.0.1:4222"},
		Settings: map[string]any{"ack_wait": "5s", "token": "s3cret-token"}}
	cfg := serverConfig(bus, startDemo(t, "demo-1"))
	cfg.Name = "redact-" + strings.ReplaceAll(t.Name(), "/", "_")
	cfg.Topics.Request = "vrpc.redact.requests"
	cfg.Host, cfg.Port = "127.0.0.1", 0
	cfg.Plugins = []vrpc.PluginConf{}
	// Runs after the server has stopped: remove its stream from the
	// machine's NATS.
	t.Cleanup(func() {
		b, err := rpcbus.New(rpcbus.Config{Type: "nats", Brokers: []string{"127.0.0.1:4222"}})
		if err != nil {
			t.Error(err)
			return
		}
		defer b.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.(rpcbus.Remover).Remove(ctx, rpcbus.Leftovers{Topics: []string{cfg.Topics.Request + ".demo"}, Groups: []string{cfg.Name}}); err != nil {
			t.Errorf("removing the test's stream: %v", err)
		}
	})
	srv := startServer(t, cfg)
	code, body := httpGet(t, "http://"+srv.AdminAddr()+"/debug/vrpc")
	if code != http.StatusOK {
		t.Fatalf("/debug/vrpc: %d %s", code, body)
	}
	if strings.Contains(body, "s3cret") || !strings.Contains(body, "alice:xxxxx@") || !strings.Contains(body, `"token": "xxxxx"`) {
		t.Errorf("/debug/vrpc does not redact the credentials:\n%s", body)
	}
}
