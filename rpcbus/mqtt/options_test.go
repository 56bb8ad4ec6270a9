package mqtt_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/mqtt"
)

func TestSettings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := newCA(t)
	caFile := filepath.Join(dir, "ca.pem")
	writePEM(t, caFile, "CERTIFICATE", ca.der)
	certFile, keyFile := ca.issue(t, dir, "client", false)
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		settings map[string]any
		brokers  []string
		want     string // "" when valid; else the error names this
	}{
		{"defaults", nil, nil, ""},
		{"all set", map[string]any{
			"client_id_prefix": "svc-", "username": "u", "password": "p", "qos": float64(1),
			"session_expiry": "10m", "will_delay": "0s", "keepalive": "60s", "connect_timeout": "3s",
			"reconnect_backoff_max": "1s", "max_message_bytes": float64(1 << 20),
			"tls_ca_file": caFile, "tls_cert_file": certFile, "tls_key_file": keyFile, "tls_server_name": "broker",
		}, []string{"tls://broker-1:8883", "mqtts://broker-2:8883"}, ""},
		{"tls scheme alone", nil, []string{"ssl://broker:8883"}, ""},
		{"unknown key", map[string]any{"sesion_expiry": "1m"}, nil,
			`rpc_bus.settings.sesion_expiry: unknown key (did you mean session_expiry? known: client_id_prefix`},
		{"wrong type", map[string]any{"qos": "one"}, nil, `rpc_bus.settings.qos: want a number, got "one"`},
		{"duration type", map[string]any{"keepalive": 30}, nil, `rpc_bus.settings.keepalive: want a duration`},
		{"qos 2", map[string]any{"qos": float64(2)}, nil, "rpc_bus.settings.qos: 2 is not supported (want 1"},
		{"qos 0", map[string]any{"qos": float64(0)}, nil, "rpc_bus.settings.qos: 0 is not supported"},
		{"session expiry zero", map[string]any{"session_expiry": "0s"}, nil, "rpc_bus.settings.session_expiry: 0s is out of range"},
		{"fractional seconds", map[string]any{"session_expiry": "1500ms"}, nil, "rpc_bus.settings.session_expiry: must be whole seconds"},
		{"will after expiry", map[string]any{"session_expiry": "10s", "will_delay": "1m"}, nil, "rpc_bus.settings.will_delay: 1m0s is longer than session_expiry"},
		{"keepalive zero", map[string]any{"keepalive": "0s"}, nil, "rpc_bus.settings.keepalive: 0s is out of range"},
		{"password alone", map[string]any{"password": "p"}, nil, "rpc_bus.settings.password: is set without username"},
		{"prefix with slash", map[string]any{"client_id_prefix": "a/b"}, nil, "rpc_bus.settings.client_id_prefix"},
		{"message bytes", map[string]any{"max_message_bytes": float64(10)}, nil, "rpc_bus.settings.max_message_bytes: 10 is out of range"},
		{"missing ca", map[string]any{"tls_ca_file": filepath.Join(dir, "nope.pem")}, nil, "rpc_bus.settings.tls_ca_file: open"},
		{"ca not pem", map[string]any{"tls_ca_file": notPEM}, nil, "rpc_bus.settings.tls_ca_file: " + notPEM + " holds no PEM certificate"},
		{"cert without key", map[string]any{"tls_cert_file": certFile}, nil, "rpc_bus.settings.tls_key_file: is missing"},
		{"key without cert", map[string]any{"tls_key_file": keyFile}, nil, "rpc_bus.settings.tls_cert_file: is missing"},
		{"bad scheme", nil, []string{"ws://broker:80"}, `rpc_bus.brokers[0] "ws://broker:80": scheme "ws" is not supported`},
		{"no port", nil, []string{"broker"}, `rpc_bus.brokers[0] "broker": address broker: missing port in address (want host:port`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, err := mqtt.New(rpcbus.Config{Type: "mqtt", Brokers: tt.brokers, Settings: tt.settings})
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				_ = b.Close()
				return
			}
			if err == nil {
				_ = b.Close()
				t.Fatalf("no error, want one containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
			var se *mqtt.SettingError
			if strings.HasPrefix(tt.want, "rpc_bus.settings.") && !errors.As(err, &se) {
				t.Fatalf("error %T is not a *mqtt.SettingError", err)
			}
		})
	}
}

// TestRegistered: rpc_bus.type mqtt builds this bus.
func TestRegistered(t *testing.T) {
	t.Parallel()
	b, err := rpcbus.New(rpcbus.Config{Type: "mqtt"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, ok := b.(*mqtt.Bus); !ok {
		t.Fatalf("rpc_bus.type mqtt built a %T", b)
	}
}

// TestTLS: with tls_ca_file, tls_cert_file and tls_key_file the bus checks
// the broker's certificate and presents its own. A TLS front to the test
// broker, demanding a client certificate, stands for a broker's TLS
// listener.
func TestTLS(t *testing.T) {
	t.Parallel()
	needBroker(t)
	dir := t.TempDir()
	ca := newCA(t)
	caFile := filepath.Join(dir, "ca.pem")
	writePEM(t, caFile, "CERTIFICATE", ca.der)
	serverCert, serverKey := ca.issue(t, dir, "broker", true)
	clientCert, clientKey := ca.issue(t, dir, "client", false)
	addr := startTLSFront(t, serverCert, serverKey, ca)

	set := testSettings()
	set["tls_ca_file"], set["tls_cert_file"], set["tls_key_file"] = caFile, clientCert, clientKey
	b, err := mqtt.New(rpcbus.Config{Type: "mqtt", Brokers: []string{"tls://" + addr}, Settings: set})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got := newCollector(false)
	topic := name(t, "t")
	subscribe(t, b, rpcbus.SubscribeOptions{Topics: []string{topic}, Group: name(t, "g")}, got.add)
	publish(t, b, topic, &rpcbus.Message{Value: []byte("over tls")})
	eventually(t, "the delivery over TLS", func() bool { return got.count("over tls") == 1 })

	// Without the CA, the broker's certificate is refused.
	set = testSettings()
	set["tls"] = true
	untrusting, err := mqtt.New(rpcbus.Config{Type: "mqtt", Brokers: []string{addr}, Settings: set})
	if err != nil {
		t.Fatal(err)
	}
	defer untrusting.Close()
	// Long enough for a first attempt to fail however loaded the machine.
	err = untrusting.Ping(ctxFor(t, 3*time.Second))
	if !errors.Is(err, rpcbus.ErrUnavailable) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Ping with an unknown CA: got %v, want ErrDisconnected about the certificate", err)
	}
}

type testCA struct {
	cert *x509.Certificate
	der  []byte
	key  *ecdsa.PrivateKey
}

func newCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "vrpc test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, der: der, key: key}
}

// issue writes a certificate signed by ca, and its key, for 127.0.0.1
// (server) or as a client certificate.
func (ca *testCA) issue(t testing.TB, dir, name string, server bool) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", kb)
	return certFile, keyFile
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startTLSFront terminates TLS, demanding a client certificate signed by
// ca, and forwards the bytes to the test broker.
func startTLSFront(t testing.TB, certFile, keyFile string, ca *testCA) string {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS12,
	})
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", brokerAddr)
			if err != nil {
				_ = c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, u)
			mu.Unlock()
			wg.Go(func() { _, _ = io.Copy(u, c); _ = u.Close(); _ = c.Close() })
			wg.Go(func() { _, _ = io.Copy(c, u); _ = u.Close(); _ = c.Close() })
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}
