package vconfig

import (
	"crypto/tls"
	"fmt"
	"strings"

	"github.com/nextpkg/vrpc/internal/settings"
)

// TargetSettings are the keys of targets.<name>.settings.
type TargetSettings struct {
	// MaxRetries retries a call that failed with UNAVAILABLE before it
	// reached the target (connection refused, no connection to send it
	// on), so that the target cannot have executed it, with exponential
	// backoff and jitter, within the call's deadline. A call the target
	// received is not retried, whatever it answered, unless its method is
	// idempotent.
	MaxRetries int `json:"max_retries"`
	// IdempotentMethods ("pkg.Service/Method", or "pkg.Service" for all its
	// methods) are retried up to MaxRetries times after UNAVAILABLE,
	// ABORTED, RESOURCE_EXHAUSTED, INTERNAL and UNKNOWN, even when the
	// target may have run the call.
	IdempotentMethods []string `json:"idempotent_methods"`
	// DescriptorSet is a file holding the target's compiled descriptors
	// (protoc --descriptor_set_out --include_imports), used instead of its
	// server reflection to resolve short method names and transcode JSON.
	DescriptorSet string `json:"descriptor_set"`

	// TLS dials the target with TLS; any other tls_* key turns it on too.
	// TLSCAFile holds the PEM CAs to trust instead of the system's;
	// TLSCertFile and TLSKeyFile a client certificate and its key, for a
	// target that asks for one; TLSServerName the name to verify the
	// target's certificate against when it is not the endpoint's host;
	// TLSInsecureSkipVerify accepts any certificate (tests only).
	TLS                   bool   `json:"tls"`
	TLSCAFile             string `json:"tls_ca_file"`
	TLSCertFile           string `json:"tls_cert_file"`
	TLSKeyFile            string `json:"tls_key_file"`
	TLSServerName         string `json:"tls_server_name"`
	TLSInsecureSkipVerify bool   `json:"tls_insecure_skip_verify"`
}

// TLSConfig returns the TLS configuration of the target's connection, or
// nil for plain text. It reads the files, so a bad one is an error naming
// its key.
func (s *TargetSettings) TLSConfig(name string) (*tls.Config, error) {
	t := settings.TLS{TLS: s.TLS, CAFile: s.TLSCAFile, CertFile: s.TLSCertFile, KeyFile: s.TLSKeyFile,
		ServerName: s.TLSServerName, InsecureSkipVerify: s.TLSInsecureSkipVerify}
	c, err := t.Config()
	if ke, ok := err.(*settings.KeyError); ok {
		return nil, fmt.Errorf("targets.%s.settings.%s: %v", name, ke.Key, ke.Err)
	}
	return c, err
}

// ParseTargetSettings decodes and checks targets.<name>.settings.
func ParseTargetSettings(name string, m map[string]any) (TargetSettings, error) {
	var s TargetSettings
	prefix := "targets." + name + ".settings"
	if err := settings.Decode(prefix, m, &s); err != nil {
		return s, err
	}
	if s.MaxRetries < 0 || s.MaxRetries > 4 {
		return s, fmt.Errorf("%s.max_retries %d: must be 0 to 4 (gRPC allows at most 5 attempts)", prefix, s.MaxRetries)
	}
	for i, m := range s.IdempotentMethods {
		svc, method, _ := strings.Cut(strings.TrimPrefix(m, "/"), "/")
		if svc == "" || strings.Contains(method, "/") {
			return s, fmt.Errorf("%s.idempotent_methods[%d] %q: want package.Service/Method or package.Service", prefix, i, m)
		}
	}
	if _, err := s.TLSConfig(name); err != nil {
		return s, err
	}
	return s, nil
}
