package nats

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeCert writes a self-signed certificate and its key as PEM files.
func writeCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "vrpc-test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
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

func TestDecodeOptions(t *testing.T) {
	t.Parallel()
	cert, key := writeCert(t)
	creds := filepath.Join(t.TempDir(), "user.creds")
	if err := os.WriteFile(creds, []byte("not checked until connect"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing.pem")
	for _, tc := range []struct {
		name     string
		settings map[string]any
		want     string // in the error; "" for none
	}{
		{"defaults", nil, ""},
		{"everything", map[string]any{
			"user": "u", "password": "p",
			"tls_ca_file": cert, "tls_cert_file": cert, "tls_key_file": key, "tls_server_name": "nats.example",
			"connect_timeout": "2s", "reconnect_wait": "500ms", "ack_wait": "1m",
			"max_age": "1h", "max_bytes": float64(1 << 30), "replicas": float64(3), "storage": "memory",
		}, ""},
		{"token", map[string]any{"token": "secret"}, ""},
		{"creds", map[string]any{"creds_file": creds}, ""},
		{"no age limit", map[string]any{"max_age": "0s"}, ""},
		{"tls alone", map[string]any{"tls": true}, ""},
		{"tls without verifying", map[string]any{"tls_insecure_skip_verify": true}, ""},
		{"unknown key", map[string]any{"ackwait": "1s"}, "rpc_bus.settings.ackwait: unknown key (did you mean ack_wait? known: ack_wait,"},
		{"wrong type", map[string]any{"replicas": "three"}, "rpc_bus.settings.replicas: want a number"},
		{"bad duration", map[string]any{"ack_wait": "soon"}, "rpc_bus.settings.ack_wait: want a duration"},
		{"token and user", map[string]any{"token": "t", "user": "u"}, "rpc_bus.settings.token: cannot be combined"},
		{"creds and token", map[string]any{"creds_file": creds, "token": "t"}, "rpc_bus.settings.creds_file: cannot be combined"},
		{"password alone", map[string]any{"password": "p"}, "rpc_bus.settings.password: is set without user"},
		{"creds missing", map[string]any{"creds_file": missing}, "rpc_bus.settings.creds_file: cannot be read"},
		{"ca missing", map[string]any{"tls_ca_file": missing}, "rpc_bus.settings.tls_ca_file: open " + missing},
		{"ca not PEM", map[string]any{"tls_ca_file": creds}, "rpc_bus.settings.tls_ca_file: " + creds + " holds no PEM certificate"},
		{"cert without key", map[string]any{"tls_cert_file": cert}, "rpc_bus.settings.tls_key_file: is missing: tls_cert_file needs its private key"},
		{"key without cert", map[string]any{"tls_key_file": key}, "rpc_bus.settings.tls_cert_file: is missing: tls_key_file needs its certificate"},
		{"cert and key mismatch", map[string]any{"tls_cert_file": cert, "tls_key_file": cert}, "rpc_bus.settings.tls_cert_file: loading the key pair"},
		{"ack_wait too short", map[string]any{"ack_wait": "100ms"}, "rpc_bus.settings.ack_wait: 100ms is out of range"},
		{"max_age too short", map[string]any{"max_age": "10ms"}, "rpc_bus.settings.max_age"},
		{"max_bytes zero", map[string]any{"max_bytes": float64(0)}, "rpc_bus.settings.max_bytes"},
		{"replicas", map[string]any{"replicas": float64(0)}, "rpc_bus.settings.replicas: 0 is out of range"},
		{"storage", map[string]any{"storage": "disk"}, `rpc_bus.settings.storage: "disk" is not supported`},
		{"connect_timeout", map[string]any{"connect_timeout": "0s"}, "rpc_bus.settings.connect_timeout"},
		{"reconnect_wait", map[string]any{"reconnect_wait": "-1s"}, "rpc_bus.settings.reconnect_wait"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o, err := decodeOptions(tc.settings)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("settings %v: %v", tc.settings, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("settings %v: error %v, want one containing %q", tc.settings, err, tc.want)
			}
			if strings.HasPrefix(tc.name, "tls") && o.tls == nil {
				t.Errorf("settings %v: TLS is not on", tc.settings)
			}
			if tc.name == "everything" {
				if o.tls == nil || o.tls.RootCAs == nil || len(o.tls.Certificates) != 1 || o.tls.ServerName != "nats.example" {
					t.Errorf("TLS configuration not built: %+v", o.tls)
				}
				cfg := o.streamConfig("a.b")
				if cfg.Replicas != 3 || cfg.MaxBytes != 1<<30 || cfg.MaxAge != time.Hour || cfg.Storage.String() != "Memory" {
					t.Errorf("stream configuration %+v does not follow the settings", cfg)
				}
			}
		})
	}
}

func TestNames(t *testing.T) {
	t.Parallel()
	// Distinct topics whose readable parts agree get distinct streams.
	a, b := streamName("a.b_c"), streamName("a_b.c")
	if a == b {
		t.Errorf("topics a.b_c and a_b.c share stream %s", a)
	}
	if got := streamName("vrpc.requests.demo"); !strings.HasPrefix(got, "vrpc_vrpc_requests_demo_") || len(got) != len("vrpc_vrpc_requests_demo_")+16 {
		t.Errorf("streamName = %q", got)
	}
	long := streamName(strings.Repeat("x", 200))
	if len(long) > 100 {
		t.Errorf("stream name of a 200-byte topic is %d bytes", len(long))
	}
	if consumerName("g") == keeperName {
		t.Error("a group can be named like the keeper")
	}
	for _, bad := range []string{"", ".a", "a.", "a..b", "a b", "a*", "_INBOX.vrpc.x"} {
		if checkTopic(bad) == nil {
			t.Errorf("checkTopic(%q) accepted it", bad)
		}
	}
	for _, good := range []string{"a", "vrpc.requests.demo", "a-b_c.D9"} {
		if err := checkTopic(good); err != nil {
			t.Errorf("checkTopic(%q): %v", good, err)
		}
	}
}
