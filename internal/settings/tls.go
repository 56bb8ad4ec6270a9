package settings

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// TLS are the TLS keys the rpc_bus backends share. Embedded in a settings
// struct, its keys are that struct's own.
type TLS struct {
	// TLS turns TLS on; any other tls_* key does too.
	TLS bool `json:"tls"`
	// CAFile is a PEM file of the CAs to trust instead of the system's.
	CAFile string `json:"tls_ca_file"`
	// CertFile and KeyFile are a PEM client certificate and its key, for
	// brokers that ask for one.
	CertFile string `json:"tls_cert_file"`
	KeyFile  string `json:"tls_key_file"`
	// ServerName is the name to verify the broker's certificate against,
	// when it is not the host of its address.
	ServerName string `json:"tls_server_name"`
	// InsecureSkipVerify accepts any certificate: for tests only.
	InsecureSkipVerify bool `json:"tls_insecure_skip_verify"`
}

// Enabled reports whether TLS is on: tls is set, or any tls_* key is.
func (t *TLS) Enabled() bool {
	return t.TLS || t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" || t.InsecureSkipVerify
}

// Config returns the TLS configuration, or nil when TLS is off. It reads
// the files now, so that a wrong path or a bad file is reported at start-up
// as a *KeyError naming its key, not later as a failed connection.
func (t *TLS) Config() (*tls.Config, error) {
	if !t.Enabled() {
		return nil, nil
	}
	bad := func(key, format string, args ...any) error {
		return &KeyError{Key: key, Err: fmt.Errorf(format, args...)}
	}
	c := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // the operator's explicit choice
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, bad("tls_ca_file", "%v", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, bad("tls_ca_file", "%s holds no PEM certificate", t.CAFile)
		}
	}
	switch {
	case t.CertFile != "" && t.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, bad("tls_cert_file", "loading the key pair %s and %s: %v", t.CertFile, t.KeyFile, err)
		}
		c.Certificates = []tls.Certificate{cert}
	case t.CertFile != "":
		return nil, bad("tls_key_file", "is missing: tls_cert_file needs its private key")
	case t.KeyFile != "":
		return nil, bad("tls_cert_file", "is missing: tls_key_file needs its certificate")
	}
	return c, nil
}
