package vgateway

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/zeromicro/go-zero/core/conf"

	"github.com/nextpkg/vrpc/vclient"
)

// Defaults of the gateway section, applied by conf.Load through the struct
// tags and by Config.SetDefaults for configs built in Go.
const (
	DefaultListen          = "127.0.0.1:9000"
	DefaultMaxMessageBytes = 4 << 20
	DefaultDrainTimeout    = 30 * time.Second
)

// Config is the gateway section of client.yaml:
//
//	gateway:
//	  listen: 127.0.0.1:9000
//	  max_message_bytes: 4194304
//	  drain_timeout: 30s
//	  tls_cert_file: /etc/vrpc/gateway.pem    # serve TLS (with tls_key_file)
//	  tls_key_file: /etc/vrpc/gateway-key.pem
//	  tls_client_ca_file: /etc/vrpc/callers-ca.pem  # and ask callers for a certificate (mutual TLS)
//
// Routing is the client's: its services table and the vrpc-target header.
type Config struct {
	// Listen is the gRPC address of the gateway, host:port. New does not
	// use it (Serve takes a listener); ListenAndServe and `vrpc gateway`
	// do.
	Listen string `json:"listen,default=127.0.0.1:9000"`
	// MaxMessageBytes bounds a request and a reply at the gateway's gRPC
	// edge; a larger one fails with RESOURCE_EXHAUSTED. The client's own
	// max_message_bytes bounds what it publishes, so the smaller applies.
	MaxMessageBytes int `json:"max_message_bytes,default=4194304"`
	// DrainTimeout bounds how long Stop waits for the calls in flight.
	DrainTimeout time.Duration `json:"drain_timeout,default=30s"`
	// TLSCertFile and TLSKeyFile are the gateway's PEM certificate and key:
	// with them it serves gRPC over TLS, without them in plain text.
	// TLSClientCAFile, a PEM file of CAs, makes it require a client
	// certificate signed by one of them (mutual TLS).
	TLSCertFile     string `json:"tls_cert_file,optional"`
	TLSKeyFile      string `json:"tls_key_file,optional"`
	TLSClientCAFile string `json:"tls_client_ca_file,optional"`
}

// TLSConfig returns the listener's TLS configuration, or nil for plain
// text. It reads the files, so a bad one is an error naming its key.
func (c *Config) TLSConfig() (*tls.Config, error) {
	switch {
	case c.TLSCertFile == "" && c.TLSKeyFile == "":
		if c.TLSClientCAFile != "" {
			return nil, errors.New("gateway.tls_client_ca_file: needs gateway.tls_cert_file and tls_key_file (mutual TLS is TLS first)")
		}
		return nil, nil
	case c.TLSCertFile == "":
		return nil, errors.New("gateway.tls_cert_file: is missing: tls_key_file needs its certificate")
	case c.TLSKeyFile == "":
		return nil, errors.New("gateway.tls_key_file: is missing: tls_cert_file needs its private key")
	}
	cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("gateway.tls_cert_file: loading the key pair %s and %s: %w", c.TLSCertFile, c.TLSKeyFile, err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if c.TLSClientCAFile != "" {
		pem, err := os.ReadFile(c.TLSClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("gateway.tls_client_ca_file: %w", err)
		}
		tc.ClientCAs = x509.NewCertPool()
		if !tc.ClientCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("gateway.tls_client_ca_file: %s holds no PEM certificate", c.TLSClientCAFile)
		}
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// SetDefaults fills the zero fields with the defaults.
func (c *Config) SetDefaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
}

// Validate reports every invalid value, naming its YAML key. Zero values
// are valid: they stand for the defaults.
func (c *Config) Validate() error {
	var errs []error
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			errs = append(errs, fmt.Errorf("gateway.listen %q: want host:port, e.g. 127.0.0.1:9000 (%v)", c.Listen, err))
		}
	}
	if c.MaxMessageBytes < 0 {
		errs = append(errs, fmt.Errorf("gateway.max_message_bytes %d: must be positive (default 4194304)", c.MaxMessageBytes))
	}
	if c.DrainTimeout < 0 {
		errs = append(errs, fmt.Errorf("gateway.drain_timeout %v: must be positive", c.DrainTimeout))
	}
	if _, err := c.TLSConfig(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// FileConfig is a client.yaml with a gateway section: the vRPC client the
// gateway calls with, and the gateway's own settings. Programs that load
// the same file as a plain vclient.Config ignore the gateway section.
type FileConfig struct {
	vclient.Config
	Gateway Config `json:"gateway,optional"`
}

// Validate reports every invalid value of the client and the gateway
// sections, naming their YAML keys. go-zero's conf.Load calls it.
func (c *FileConfig) Validate() error {
	return errors.Join(c.Config.Validate(), c.Gateway.Validate())
}

// LoadConfig loads client.yaml, gateway section included, into cfg with
// go-zero's conf (${ENV} references are expanded) and applies the defaults.
func LoadConfig(file string, cfg *FileConfig) error {
	if err := conf.Load(file, cfg, conf.UseEnv()); err != nil {
		return fmt.Errorf("client config %s: %w", file, err)
	}
	cfg.Config.SetDefaults()
	cfg.Gateway.SetDefaults()
	return nil
}
