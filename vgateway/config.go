package vgateway

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"time"

	"github.com/nextpkg/vrpc/vclient"
	"github.com/nextpkg/vrpc/vconfig"
)

// Defaults of the gateway section, applied by LoadConfig through the struct
// tags and by Config.SetDefaults for configs built in Go.
const (
	DefaultListen          = "127.0.0.1:9000"
	DefaultMaxMessageBytes = 4 << 20
	DefaultDrainTimeout    = 30 * time.Second
	// DefaultMaxConcurrentStreams is the default max_concurrent_streams.
	DefaultMaxConcurrentStreams = 1024
	// DefaultMaxInFlightBytes is the default max_in_flight_bytes.
	DefaultMaxInFlightBytes = 256 << 20
	// DefaultKeepaliveTime, DefaultKeepaliveTimeout and
	// DefaultKeepaliveMinTime are the defaults of the keepalive keys.
	DefaultKeepaliveTime    = time.Minute
	DefaultKeepaliveTimeout = 20 * time.Second
	DefaultKeepaliveMinTime = 10 * time.Second
)

// headerListSlack is what max_header_list_bytes adds, by default, to twice
// the client's max_metadata_bytes: room for gRPC's own headers. Twice,
// because HTTP/2 counts 32 bytes on top of each field, which
// max_metadata_bytes does not.
const headerListSlack = 16 << 10

// Config is the gateway section of client.yaml:
//
//	gateway:
//	  listen: 127.0.0.1:9000
//	  max_message_bytes: 4194304
//	  drain_timeout: 30s
//	  max_concurrent_streams: 1024
//	  max_in_flight_bytes: 268435456
//	  keepalive: {time: 1m, timeout: 20s, min_time: 10s}
//	  max_header_list_bytes: 147456
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
	// MaxConcurrentStreams bounds the calls one connection has open at
	// once (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS): a caller's further
	// calls wait in its own gRPC library until one ends.
	MaxConcurrentStreams uint32 `json:"max_concurrent_streams,default=1024"`
	// MaxInFlightBytes bounds the request and reply bytes the gateway
	// holds for the calls in flight, across connections; a call whose
	// request does not fit fails with RESOURCE_EXHAUSTED at once.
	MaxInFlightBytes int `json:"max_in_flight_bytes,default=268435456"`
	// Keepalive: the gateway pings a connection idle for Time and closes it
	// when the ping goes unanswered for Timeout; a caller that pings more
	// often than every MinTime is sent GOAWAY (too_many_pings).
	Keepalive struct {
		Time    time.Duration `json:"time,default=1m"`
		Timeout time.Duration `json:"timeout,default=20s"`
		MinTime time.Duration `json:"min_time,default=10s"`
	} `json:"keepalive"`
	// MaxHeaderListBytes bounds the request headers of a call as HTTP/2
	// counts them (SETTINGS_MAX_HEADER_LIST_SIZE); gRPC ends a call over
	// it at the transport, with INTERNAL. Zero takes twice the client's
	// max_metadata_bytes plus 16 KiB, so that metadata between the
	// client's limit and this one gets the clearer RESOURCE_EXHAUSTED of
	// max_metadata_bytes.
	MaxHeaderListBytes int `json:"max_header_list_bytes,optional"`
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
	if c.MaxConcurrentStreams == 0 {
		c.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	if c.MaxInFlightBytes == 0 {
		c.MaxInFlightBytes = DefaultMaxInFlightBytes
	}
	if c.Keepalive.Time == 0 {
		c.Keepalive.Time = DefaultKeepaliveTime
	}
	if c.Keepalive.Timeout == 0 {
		c.Keepalive.Timeout = DefaultKeepaliveTimeout
	}
	if c.Keepalive.MinTime == 0 {
		c.Keepalive.MinTime = DefaultKeepaliveMinTime
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
	if c.MaxInFlightBytes < 0 {
		errs = append(errs, fmt.Errorf("gateway.max_in_flight_bytes %d: must be positive (default %d)", c.MaxInFlightBytes, DefaultMaxInFlightBytes))
	} else if inFlight, msg := orDefault(c.MaxInFlightBytes, DefaultMaxInFlightBytes), orDefault(c.MaxMessageBytes, DefaultMaxMessageBytes); msg > 0 && inFlight < msg {
		errs = append(errs, fmt.Errorf("gateway.max_in_flight_bytes %d is below gateway.max_message_bytes %d: a request of the largest size could never be carried; raise it to at least %d",
			inFlight, msg, msg))
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"time", c.Keepalive.Time}, {"timeout", c.Keepalive.Timeout}, {"min_time", c.Keepalive.MinTime}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("gateway.keepalive.%s %v: must be positive", d.key, d.v))
		}
	}
	if c.MaxHeaderListBytes < 0 || int64(c.MaxHeaderListBytes) > math.MaxUint32 {
		errs = append(errs, fmt.Errorf("gateway.max_header_list_bytes %d: must be between 0 (twice the client's max_metadata_bytes plus 16 KiB) and %d", c.MaxHeaderListBytes, uint32(math.MaxUint32)))
	}
	if _, err := c.TLSConfig(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// FileConfig is a client.yaml with a gateway section: the vRPC client the
// gateway calls with, and the gateway's own settings. Programs that load
// the same file as a plain vclient.Config ignore the gateway section.
type FileConfig struct {
	vclient.Config
	Gateway Config `json:"gateway,optional"`
}

// Validate reports every invalid value of the client and the gateway
// sections, naming their YAML keys. LoadConfig calls it.
func (c *FileConfig) Validate() error {
	return errors.Join(c.Config.Validate(), c.Gateway.Validate())
}

// LoadConfig loads client.yaml, gateway section included, into cfg with
// vconfig.LoadFile (${ENV} references are expanded, unknown keys are an
// error) and applies the defaults.
func LoadConfig(file string, cfg *FileConfig) error {
	if err := vconfig.LoadFile(file, cfg); err != nil {
		return fmt.Errorf("client config %s: %w", file, err)
	}
	cfg.Config.SetDefaults()
	cfg.Gateway.SetDefaults()
	return nil
}
