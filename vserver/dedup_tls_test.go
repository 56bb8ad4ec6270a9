package vserver_test

import (
	"net"
	"strings"
	"testing"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/internal/vtest"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vserver"
	_ "github.com/nextpkg/vrpc/vserver/redisdedup" // dedup.store redis
)

// TestRedisDedupTLS: with dedup.redis.tls_* keys the server reaches a
// Redis that speaks only TLS and asks for a client certificate; without
// the certificate, or without trusting the server's, it does not start.
func TestRedisDedupTLS(t *testing.T) {
	t.Parallel()
	cert, key := vtest.SelfSignedFiles(t)
	dir, addr := t.TempDir(), vtest.FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	vtest.StartProcess(t, dir, addr, "redis-server", "--port", "0", "--tls-port", port, "--bind", "127.0.0.1",
		"--tls-cert-file", cert, "--tls-key-file", key, "--tls-ca-cert-file", cert, "--tls-auth-clients", "yes",
		"--save", "", "--appendonly", "no", "--dir", dir)

	newServer := func(r vrpc.RedisConf) error {
		cfg := &vrpc.Config{Port: -1, RpcBus: rpcbus.Config{Type: "memory"},
			Targets: map[string]vrpc.Target{"demo": {Endpoint: "127.0.0.1:1"}},
			Dedup:   vrpc.DedupConf{Store: "redis", Redis: r}}
		s, err := vserver.NewServer(cfg)
		if err == nil {
			s.Stop()
		}
		return err
	}
	if err := newServer(vrpc.RedisConf{Addr: addr, TLSCAFile: cert, TLSCertFile: cert, TLSKeyFile: key}); err != nil {
		t.Fatalf("with TLS and a client certificate: %v", err)
	}
	if err := newServer(vrpc.RedisConf{Addr: addr, TLSCAFile: cert}); err == nil {
		t.Error("without a client certificate: the server started")
	}
	if err := newServer(vrpc.RedisConf{Addr: addr, TLS: true, TLSCertFile: cert, TLSKeyFile: key}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("without trusting the server's certificate: %v, want an error about it", err)
	}
	if err := newServer(vrpc.RedisConf{Addr: addr, TLSCertFile: cert}); err == nil || !strings.Contains(err.Error(), "dedup.redis.tls_key_file") {
		t.Errorf("a certificate without its key: %v, want an error naming dedup.redis.tls_key_file", err)
	}
}
