package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nextpkg/vrpc/internal/vtest"

	"github.com/nextpkg/vrpc/codec/seal"
	"github.com/nextpkg/vrpc/example/demo/demoserver"
)

// TestKeygen: what vrpc keygen prints is a key that signs.
func TestKeygen(t *testing.T) {
	code, out, errOut := vrpcRun(t, context.Background(), "keygen")
	if code != 0 {
		t.Fatalf("keygen exited %d: %s", code, errOut)
	}
	if _, err := seal.NewSecretKey("k", []byte(strings.TrimSpace(out))); err != nil {
		t.Fatalf("keygen's secret %q: %v", out, err)
	}
	code, out, errOut = vrpcRun(t, context.Background(), "keygen", "--ed25519")
	if code != 0 {
		t.Fatalf("keygen --ed25519 exited %d: %s", code, errOut)
	}
	i := strings.Index(out, "-----BEGIN PUBLIC KEY-----")
	if i < 0 {
		t.Fatalf("no public key in:\n%s", out)
	}
	priv, err := seal.ParsePrivateKey(out[:i])
	if err != nil {
		t.Fatal(err)
	}
	pub, err := seal.ParsePublicKey(out[i:])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := seal.NewEd25519Key("k", pub, priv, nil); err != nil {
		t.Fatalf("the pair does not match: %v", err)
	}
}

// TestServeReloadsKeysOnHangup: SIGHUP makes vrpc serve read its keys
// again, and keeps the ones in use when the new ones do not read.
func TestServeReloadsKeysOnHangup(t *testing.T) {
	port := freePort(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := demoserver.Serve(lis, "demo-1")
	defer target.Stop()
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "edge.secret")
	if err := os.WriteFile(secretFile, []byte(seal.GenerateSecret()), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "server.yaml")
	yaml := fmt.Sprintf(`
name: vrpc-hup
host: 127.0.0.1
port: %d
rpc_bus: {type: embedded, brokers: ["127.0.0.1:0"]}
targets:
  demo: {endpoint: "%s"}
security:
  clients:
    edge: {allow: [demo], keys: {k1: {secret_file: %s}}}
`, port, lis.Addr(), secretFile)
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var stderr vtest.Buffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"serve", "-f", file}, &bytes.Buffer{}, &stderr) }()
	defer func() {
		cancel()
		<-done
	}()
	waitReady(t, port, func() string {
		select {
		case code := <-done:
			done <- code // for the deferred wait
			return fmt.Sprint(code)
		default:
			return ""
		}
	})

	hangup := func(want string) {
		t.Helper()
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(stderr.String(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("after SIGHUP stderr does not say %q:\n%s", want, stderr.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if err := os.WriteFile(secretFile, []byte(seal.GenerateSecret()), 0o600); err != nil {
		t.Fatal(err)
	}
	hangup("SIGHUP: security keys reloaded")
	if err := os.WriteFile(secretFile, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	hangup("SIGHUP: security keys not reloaded, the ones in use stay")
}

// waitReady waits for serve's /readyz on port; exited says how serve
// ended, or "" while it runs.
func waitReady(t *testing.T, port int, exited func() string) {
	t.Helper()
	ready := fmt.Sprintf("http://127.0.0.1:%d/readyz", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(ready)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				http.DefaultClient.CloseIdleConnections()
				return
			}
		}
		if how := exited(); how != "" {
			t.Fatalf("serve exited %s before it was ready", how)
		}
		if time.Now().After(deadline) {
			t.Fatal("serve was not ready within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
