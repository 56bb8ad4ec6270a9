package amqp_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nextpkg/vrpc/internal/vtest"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/amqp"
)

// TestTLSBroker: against a RabbitMQ node of the test's own that listens
// only on TLS and requires a client certificate, the bus with tls_ca_file,
// tls_cert_file and tls_key_file carries messages; without a client
// certificate it cannot connect. The node takes some seconds to boot.
func TestTLSBroker(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("boots a RabbitMQ node")
	}
	const bin = "/usr/lib/rabbitmq/bin/rabbitmq-server"
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("RabbitMQ is not installed: %v", err)
	}
	ca, cert, key := vtest.CAFiles(t)
	dir, addr, dist := t.TempDir(), vtest.FreeAddr(t), vtest.FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	_, distPort, _ := net.SplitHostPort(dist)
	conf := fmt.Sprintf(`listeners.tcp = none
listeners.ssl.default = 127.0.0.1:%s
ssl_options.cacertfile = %s
ssl_options.certfile = %s
ssl_options.keyfile = %s
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = true
loopback_users = none
`, port, ca, cert, key)
	for name, text := range map[string]string{"rabbitmq.conf": conf, "enabled_plugins": "[].\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	vtest.StartProcessEnv(t, dir, addr, []string{
		"HOME=" + dir,
		"RABBITMQ_CONF_ENV_FILE=" + filepath.Join(dir, "rabbitmq-env.conf"), // none: not the machine's
		"RABBITMQ_NODENAME=vrpc-tls-" + strings.ReplaceAll(filepath.Base(dir), "_", "") + "@localhost",
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_DIST_PORT=" + distPort,
		"RABBITMQ_MNESIA_BASE=" + filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE=" + filepath.Join(dir, "log"),
		"RABBITMQ_ENABLED_PLUGINS_FILE=" + filepath.Join(dir, "enabled_plugins"),
		"RABBITMQ_CONFIG_FILE=" + filepath.Join(dir, "rabbitmq.conf"),
		"RABBITMQ_PID_FILE=" + filepath.Join(dir, "rabbitmq.pid"),
		"ERL_EPMD_ADDRESS=127.0.0.1",
	}, bin)

	set := map[string]any{"tls_ca_file": ca, "tls_cert_file": cert, "tls_key_file": key}
	b, err := amqp.New(rpcbus.Config{Type: "amqp", Brokers: []string{addr}, Settings: set})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got := make(chan string, 1)
	sub, err := b.Subscribe(ctxFor(t, 60*time.Second), rpcbus.SubscribeOptions{Topics: []string{"tls.topic"}, Group: "g"},
		func(d *rpcbus.Delivery) { got <- string(d.Value); d.Ack() })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close(ctxFor(t, 30*time.Second))
	publishEventually(t, b, "tls.topic", &rpcbus.Message{Value: []byte("over tls")})
	select {
	case v := <-got:
		if v != "over tls" {
			t.Errorf("got %q", v)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no delivery over TLS within 30s")
	}

	nocert, err := amqp.New(rpcbus.Config{Type: "amqp", Brokers: []string{addr},
		Settings: map[string]any{"tls_ca_file": ca, "reconnect_backoff": "100ms"}})
	if err != nil {
		t.Fatal(err)
	}
	defer nocert.Close()
	if err := nocert.Ping(ctxFor(t, 2*time.Second)); !errors.Is(err, rpcbus.ErrUnavailable) {
		t.Errorf("Ping without a client certificate = %v, want ErrUnavailable", err)
	}
}
