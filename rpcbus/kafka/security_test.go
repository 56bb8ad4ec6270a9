package kafka_test

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/nextpkg/vrpc/internal/vtest"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/embedded"
	"github.com/nextpkg/vrpc/rpcbus/kafka"
)

// roundTrip publishes one message on b and consumes it in a group: the
// bus can talk to its broker.
func roundTrip(t *testing.T, b *kafka.Bus) {
	t.Helper()
	topic := name(t, "requests")
	got := make(chan *rpcbus.Delivery, 1)
	s := subscribe(t, b, rpcbus.SubscribeOptions{Topics: []string{topic}, Group: name(t, "group")},
		func(d *rpcbus.Delivery) { got <- d })
	closeSub(t, s)
	publish(t, b, topic, &rpcbus.Message{Value: []byte("over " + topic)})
	select {
	case d := <-got:
		d.Ack()
	case <-time.After(30 * time.Second):
		t.Fatal("no delivery")
	}
}

// TestSASL: a bus with the broker's user and password works, for each
// mechanism; with a wrong password publishing fails (TestRefusedSASL
// checks how).
func TestSASL(t *testing.T) {
	t.Parallel()
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			t.Parallel()
			creds := map[string]any{"sasl_mechanism": mech, "username": "vrpc", "password": "s3cret",
				"heartbeat_interval": "100ms"}
			// Type embedded asks its clients for the credentials it is given.
			broker, err := embedded.New(rpcbus.Config{Brokers: []string{"127.0.0.1:0"}, Settings: creds})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = broker.Close() })
			roundTrip(t, broker.Bus)

			good, err := kafka.New(rpcbus.Config{Brokers: broker.Brokers(), Settings: creds})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = good.Close() })
			roundTrip(t, good)

			wrong := map[string]any{"sasl_mechanism": mech, "username": "vrpc", "password": "guess", "dial_timeout": "2s"}
			bad, err := kafka.New(rpcbus.Config{Brokers: broker.Brokers(), Settings: wrong})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = bad.Close() })
			if err := bad.Publish(ctxFor(t, 3*time.Second), name(t, "requests"), &rpcbus.Message{Value: []byte("x")}); err == nil {
				t.Fatal("publishing with a wrong password succeeded")
			}
		})
	}
}

// TestTLS: a bus trusting the broker's CA through tls_ca_file talks to a
// broker that serves TLS only.
func TestTLS(t *testing.T) {
	t.Parallel()
	cert, caFile := vtest.SelfSigned(t)
	e, err := embedded.Start("127.0.0.1:0", kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	b, err := kafka.New(rpcbus.Config{Brokers: []string{e.Addr()}, Settings: map[string]any{
		"tls_ca_file": caFile, "heartbeat_interval": "100ms",
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	roundTrip(t, b)

	// Without the CA the broker's certificate is not trusted.
	plain, err := kafka.New(rpcbus.Config{Brokers: []string{e.Addr()}, Settings: map[string]any{"tls": true, "dial_timeout": "2s"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = plain.Close() })
	if err := plain.Publish(ctxFor(t, 5*time.Second), name(t, "requests"), &rpcbus.Message{Value: []byte("x")}); err == nil {
		t.Fatal("publishing to a broker with an untrusted certificate succeeded")
	}
}

// TestMutualTLS: a broker that requires a client certificate of its CA
// serves a bus with tls_cert_file and tls_key_file, and not one without.
func TestMutualTLS(t *testing.T) {
	t.Parallel()
	certFile, keyFile := vtest.SelfSignedFiles(t)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	e, err := embedded.Start("127.0.0.1:0", kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
		ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	b, err := kafka.New(rpcbus.Config{Brokers: []string{e.Addr()}, Settings: map[string]any{
		"tls_ca_file": certFile, "tls_cert_file": certFile, "tls_key_file": keyFile, "heartbeat_interval": "100ms",
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	roundTrip(t, b)

	nocert, err := kafka.New(rpcbus.Config{Brokers: []string{e.Addr()}, Settings: map[string]any{"tls_ca_file": certFile, "dial_timeout": "2s"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nocert.Close() })
	if err := nocert.Publish(ctxFor(t, 5*time.Second), name(t, "requests"), &rpcbus.Message{Value: []byte("x")}); err == nil {
		t.Fatal("publishing without a client certificate succeeded")
	}
}

// TestSecuritySettings: bad TLS and SASL settings fail at start-up naming
// their key.
func TestSecuritySettings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "junk.pem"), []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		settings map[string]any
		want     string
	}{
		{settings: map[string]any{"sasl_mechanism": "GSSAPI", "username": "u"}, want: "rpc_bus.settings.sasl_mechanism: \"GSSAPI\" is not supported"},
		{settings: map[string]any{"sasl_mechanism": "PLAIN"}, want: "rpc_bus.settings.username: is missing"},
		{settings: map[string]any{"password": "p"}, want: "rpc_bus.settings.username: is missing"},
		{settings: map[string]any{"tls_ca_file": filepath.Join(dir, "nope.pem")}, want: "rpc_bus.settings.tls_ca_file"},
		{settings: map[string]any{"tls_ca_file": filepath.Join(dir, "junk.pem")}, want: "rpc_bus.settings.tls_ca_file: " + filepath.Join(dir, "junk.pem") + " holds no PEM certificate"},
		{settings: map[string]any{"tls_cert_file": filepath.Join(dir, "c.pem")}, want: "rpc_bus.settings.tls_key_file: is missing"},
		{settings: map[string]any{"tls": "yes"}, want: "rpc_bus.settings.tls: want true or false"},
	} {
		b, err := kafka.New(rpcbus.Config{Brokers: []string{"127.0.0.1:0"}, Settings: tc.settings})
		if err == nil {
			_ = b.Close()
			t.Errorf("settings %v: no error, want %q", tc.settings, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("settings %v: %v, want an error containing %q", tc.settings, err, tc.want)
		}
	}
}
