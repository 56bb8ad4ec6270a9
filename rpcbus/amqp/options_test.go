package amqp_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/amqp"
)

// TestSettings: rpc_bus.settings and rpc_bus.brokers are checked when the
// bus is made; a bad entry is an error that names its key and says what is
// accepted.
func TestSettings(t *testing.T) {
	t.Parallel()
	certFile, keyFile := writeCert(t)
	tests := []struct {
		name     string
		brokers  []string
		settings map[string]any
		key      string // in the error; "" for no error
		want     string // also in the error
	}{
		{name: "defaults"},
		{name: "everything", brokers: []string{"10.0.0.1", "10.0.0.2:5673", "[::1]:5672"}, settings: map[string]any{
			"vhost": "prod", "username": "vrpc", "password": "secret", "auth_mechanism": "external",
			"tls_ca_file": certFile, "tls_cert_file": certFile, "tls_key_file": keyFile, "tls_server_name": "rabbit.internal",
			"exchange": "rpc", "queue_type": "classic", "queue_expires": "24h", "persistent": false, "prefetch": float64(64),
			"max_message_bytes": float64(8 << 20), "heartbeat": "5s", "dial_timeout": "3s", "confirm_timeout": "10s",
			"reconnect_backoff": "2s", "connection_name": "billing",
		}},
		{name: "unknown key", settings: map[string]any{"queue_typ": "quorum"},
			key: "rpc_bus.settings.queue_typ", want: "did you mean queue_type?"},
		{name: "wrong type", settings: map[string]any{"prefetch": "many"},
			key: "rpc_bus.settings.prefetch", want: "want a number"},
		{name: "bad duration", settings: map[string]any{"heartbeat": "often"},
			key: "rpc_bus.settings.heartbeat", want: "duration"},
		{name: "queue type", settings: map[string]any{"queue_type": "stream"},
			key: "rpc_bus.settings.queue_type", want: "want quorum, or classic"},
		{name: "prefetch range", settings: map[string]any{"prefetch": float64(70000)},
			key: "rpc_bus.settings.prefetch", want: "out of range"},
		{name: "reserved exchange", settings: map[string]any{"exchange": "amq.direct"},
			key: "rpc_bus.settings.exchange", want: "reserved"},
		{name: "empty exchange", settings: map[string]any{"exchange": ""},
			key: "rpc_bus.settings.exchange", want: "empty"},
		{name: "empty vhost", settings: map[string]any{"vhost": ""},
			key: "rpc_bus.settings.vhost", want: "empty"},
		{name: "message size", settings: map[string]any{"max_message_bytes": float64(1 << 30)},
			key: "rpc_bus.settings.max_message_bytes", want: "out of range"},
		{name: "queue expires", settings: map[string]any{"queue_expires": "10ms"},
			key: "rpc_bus.settings.queue_expires", want: "out of range"},
		{name: "heartbeat range", settings: map[string]any{"heartbeat": "100ms"},
			key: "rpc_bus.settings.heartbeat", want: "out of range"},
		{name: "confirm timeout", settings: map[string]any{"confirm_timeout": "0s"},
			key: "rpc_bus.settings.confirm_timeout", want: "out of range"},
		{name: "auth mechanism", settings: map[string]any{"auth_mechanism": "scram"},
			key: "rpc_bus.settings.auth_mechanism", want: "want plain, or external"},
		{name: "external without certificate", settings: map[string]any{"auth_mechanism": "external"},
			key: "rpc_bus.settings.auth_mechanism", want: "tls_cert_file"},
		{name: "cert without key", settings: map[string]any{"tls_cert_file": certFile},
			key: "rpc_bus.settings.tls_key_file", want: "is missing: tls_cert_file needs its private key"},
		{name: "key without cert", settings: map[string]any{"tls_key_file": keyFile},
			key: "rpc_bus.settings.tls_cert_file", want: "is missing: tls_key_file needs its certificate"},
		{name: "missing CA file", settings: map[string]any{"tls_ca_file": filepath.Join(t.TempDir(), "nope.pem")},
			key: "rpc_bus.settings.tls_ca_file", want: "no such file"},
		{name: "CA file without PEM", settings: map[string]any{"tls_ca_file": keyFile + ".txt"},
			key: "rpc_bus.settings.tls_ca_file", want: ""},
		{name: "bad key pair", settings: map[string]any{"tls_cert_file": keyFile, "tls_key_file": keyFile},
			key: "rpc_bus.settings.tls_cert_file", want: "key pair"},
		{name: "user without scheme", brokers: []string{"guest:guest@localhost:5672"},
			key: "rpc_bus.brokers[0]", want: "want host:port, or amqp://"},
		{name: "bad port", brokers: []string{"127.0.0.1:5672", "localhost:http"},
			key: "rpc_bus.brokers[1]", want: "bad port"},
	}
	if err := os.WriteFile(keyFile+".txt", []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := rpcbus.New(rpcbus.Config{Type: "amqp", Brokers: tt.brokers, Settings: tt.settings})
			if tt.key == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				_ = b.Close()
				return
			}
			if err == nil {
				_ = b.Close()
				t.Fatalf("New with %v %v: no error", tt.brokers, tt.settings)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, tt.key+":") && !strings.HasPrefix(msg, tt.key+" ") {
				t.Errorf("error %q does not start with the key %s", msg, tt.key)
			}
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not say %q", msg, tt.want)
			}
			var se *amqp.SettingError
			if !errors.As(err, &se) || se.Key != tt.key {
				t.Errorf("error %v is not a *amqp.SettingError for %s", err, tt.key)
			}
		})
	}
}

// TestSettingsKnownKeys: the unknown-key error lists every key, so an
// operator sees what there is.
func TestSettingsKnownKeys(t *testing.T) {
	t.Parallel()
	_, err := amqp.New(rpcbus.Config{Settings: map[string]any{"zzz": 1}})
	if err == nil {
		t.Fatal("no error for an unknown key")
	}
	want := []string{"auth_mechanism", "confirm_timeout", "connection_name", "dial_timeout", "exchange", "heartbeat", "max_message_bytes",
		"password", "persistent", "prefetch", "queue_expires", "queue_type", "reconnect_backoff", "tls", "tls_ca_file",
		"tls_cert_file", "tls_insecure_skip_verify", "tls_key_file", "tls_server_name", "username", "vhost"}
	for _, k := range want {
		if !strings.Contains(err.Error(), k) {
			t.Errorf("error %q does not list %s", err, k)
		}
	}
	if !slices.IsSorted(want) {
		t.Error("keep want sorted")
	}
}

// TestBrokers: brokers without a port get AMQP's, 5671 with TLS.
func TestBrokers(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		brokers  []string
		settings map[string]any
		want     []string
	}{
		{nil, nil, []string{"127.0.0.1:5672"}},
		{[]string{"rabbit-1", "rabbit-2:5673"}, nil, []string{"rabbit-1:5672", "rabbit-2:5673"}},
		{[]string{"rabbit"}, map[string]any{"tls": true}, []string{"rabbit:5671"}},
	} {
		b, err := amqp.New(rpcbus.Config{Brokers: tt.brokers, Settings: tt.settings})
		if err != nil {
			t.Fatal(err)
		}
		if got := b.Brokers(); !slices.Equal(got, tt.want) {
			t.Errorf("brokers %q with %v: got %q, want %q", tt.brokers, tt.settings, got, tt.want)
		}
		_ = b.Close()
	}
}

// writeCert writes a self-signed certificate and its key, PEM encoded.
func writeCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// Its own CA, for a server named vrpc-test and for clients.
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "vrpc test"},
		DNSNames:              []string{"vrpc-test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
