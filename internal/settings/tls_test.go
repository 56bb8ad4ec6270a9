package settings_test

import (
	"crypto/tls"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nextpkg/vrpc/internal/settings"
)

// A self-signed certificate and its key, made for these tests only with
//
//	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
//	  -keyout key.pem -out cert.pem -days 36500 -subj "/CN=vrpc test"
const (
	cert = "testdata/cert.pem"
	key  = "testdata/key.pem"
)

func TestTLSEnabled(t *testing.T) {
	t.Parallel()
	if (&settings.TLS{}).Enabled() {
		t.Error("TLS is on without any key")
	}
	for _, on := range []settings.TLS{
		{TLS: true}, {CAFile: "x"}, {CertFile: "x"}, {KeyFile: "x"}, {ServerName: "x"}, {InsecureSkipVerify: true},
	} {
		if !on.Enabled() {
			t.Errorf("%+v: TLS is off", on)
		}
	}
}

func TestTLSConfig(t *testing.T) {
	t.Parallel()
	if c, err := (&settings.TLS{}).Config(); c != nil || err != nil {
		t.Fatalf("without TLS keys: got %v, %v; want nil, nil", c, err)
	}
	c, err := (&settings.TLS{TLS: true}).Config()
	if err != nil || c == nil || c.MinVersion != tls.VersionTLS12 || c.RootCAs != nil || c.InsecureSkipVerify {
		t.Fatalf("tls alone: got %+v, %v; want TLS 1.2 or later with the system's roots", c, err)
	}
	c, err = (&settings.TLS{CAFile: cert, CertFile: cert, KeyFile: key, ServerName: "broker", InsecureSkipVerify: true}).Config()
	if err != nil {
		t.Fatal(err)
	}
	if c.RootCAs == nil || len(c.Certificates) != 1 || c.ServerName != "broker" || !c.InsecureSkipVerify {
		t.Fatalf("every key: got %+v", c)
	}
}

// TestTLSConfigErrors: a bad file is reported at once, as a KeyError
// naming the key to fix.
func TestTLSConfigErrors(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "missing.pem")
	for _, tt := range []struct {
		tls     settings.TLS
		key     string
		problem string
	}{
		{settings.TLS{CAFile: missing}, "tls_ca_file", "open " + missing},
		{settings.TLS{CAFile: key}, "tls_ca_file", key + " holds no PEM certificate"},
		{settings.TLS{CertFile: cert}, "tls_key_file", "is missing: tls_cert_file needs its private key"},
		{settings.TLS{KeyFile: key}, "tls_cert_file", "is missing: tls_key_file needs its certificate"},
		{settings.TLS{CertFile: cert, KeyFile: cert}, "tls_cert_file", "loading the key pair " + cert + " and " + cert + ": "},
	} {
		c, err := tt.tls.Config()
		var ke *settings.KeyError
		if c != nil || !errors.As(err, &ke) || ke.Key != tt.key || !strings.HasPrefix(ke.Err.Error(), tt.problem) {
			t.Errorf("%+v: got %v, %v; want a KeyError for %s saying %q", tt.tls, c, err, tt.key, tt.problem)
		}
	}
}
