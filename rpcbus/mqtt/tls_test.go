package mqtt_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nextpkg/vrpc/internal/vtest"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/mqtt"
)

// TestTLSBroker: against a Mosquitto of the test's own whose only
// listener speaks TLS and requires a client certificate, the bus with
// tls_ca_file, tls_cert_file and tls_key_file carries messages; without a
// client certificate it cannot reach the broker.
func TestTLSBroker(t *testing.T) {
	t.Parallel()
	cert, key := vtest.SelfSignedFiles(t)
	dir, addr := t.TempDir(), vtest.FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(dir, "mosquitto.conf")
	err := os.WriteFile(conf, []byte(fmt.Sprintf(`listener %s 127.0.0.1
allow_anonymous true
cafile %s
certfile %s
keyfile %s
require_certificate true
user root
log_dest stdout
`, port, cert, cert, key)), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	vtest.StartProcess(t, dir, addr, "mosquitto", "-c", conf)

	set := testSettings()
	set["tls_ca_file"], set["tls_cert_file"], set["tls_key_file"] = cert, cert, key
	b, err := mqtt.New(rpcbus.Config{Type: "mqtt", Brokers: []string{"mqtts://" + addr}, Settings: set})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got := newCollector(false)
	topic := name(t, "t")
	subscribe(t, b, rpcbus.SubscribeOptions{Topics: []string{topic}, Group: name(t, "g")}, got.add)
	publish(t, b, topic, &rpcbus.Message{Value: []byte("over tls")})
	eventually(t, "the delivery over TLS", func() bool { return got.count("over tls") == 1 })

	set = testSettings()
	set["tls_ca_file"] = cert
	nocert, err := mqtt.New(rpcbus.Config{Type: "mqtt", Brokers: []string{"mqtts://" + addr}, Settings: set})
	if err != nil {
		t.Fatal(err)
	}
	defer nocert.Close()
	err = nocert.Ping(ctxFor(t, 3*time.Second))
	if !errors.Is(err, rpcbus.ErrUnavailable) {
		t.Errorf("Ping without a client certificate = %v, want ErrUnavailable", err)
	}
}
