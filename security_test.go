package vrpc_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/codec/seal"
	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/internal/vtest"
	"github.com/nextpkg/vrpc/vclient"
	"github.com/nextpkg/vrpc/vconfig"
	"github.com/nextpkg/vrpc/vserver"
)

// TestSecurityConfig: the security sections load from YAML (secrets from
// the environment), and every mistake is named by its key.
func TestSecurityConfig(t *testing.T) {
	secret := seal.GenerateSecret()
	t.Setenv("EDGE_SECRET", secret)
	var cfg vrpc.Config
	load(t, `targets: {demo: {endpoint: 'x:1'}}
security:
  clients:
    edge-1: {allow: [demo], keys: {k1: {secret: "${EDGE_SECRET}"}, k0: {revoked: true}}}
`, &cfg)
	if got := cfg.Security.Clients["edge-1"].Keys["k1"].Secret; got != secret {
		t.Fatalf("secret from the environment: %q", got)
	}
	if cfg.Security.ReplayWindow != 5*time.Minute || cfg.Security.ClockSkew != 30*time.Second {
		t.Fatalf("defaults: %+v", cfg.Security)
	}
	var cc vrpc.ClientConfig
	if err := vrpc.LoadClientConfig(writeFile(t, "client_id: edge-1\nsecurity: {key_id: k1, secret: \"${EDGE_SECRET}\", encrypt: true}\n"), &cc); err != nil {
		t.Fatal(err)
	}

	pub, _, _ := seal.GenerateEd25519()
	target := "targets: {demo: {endpoint: 'x:1'}}\n"
	for _, c := range []struct{ yaml, want string }{
		{target + "security: {clients: {edge: {keys: {k1: {secret: " + secret + "}}}}}\n", "security.clients.edge.allow: empty"},
		{target + "security: {clients: {edge: {allow: [demo]}}}\n", "security.clients.edge.keys: none"},
		{target + "security: {clients: {edge: {allow: [demo], keys: {k1: {secret: short}}}}}\n", "security.clients.edge.keys.k1: secret of 5 bytes"},
		{target + "security: {clients: {edge: {allow: [demo], keys: {k1: {}}}}}\n", "security.clients.edge.keys.k1: no secret or public_key"},
		{target + "security: {clients: {edge: {allow: [demo], keys: {k1: {secret: " + secret + ", secret_file: /x}}}}}\n", "security.clients.edge.keys.k1.secret and security.clients.edge.keys.k1.secret_file: both set"},
		{target + "security: {clients: {edge: {allow: [demo], keys: {k1: {public_key: nope}}}}}\n", "security.clients.edge.keys.k1.public_key"},
		{target + "security: {clients: {edge: {allow: [demo], keys: {k1: {secret_file: /no/such/file}}}}}\n", "security.clients.edge.keys.k1.secret_file"},
		{target + "dedup: {store: none}\nsecurity: {clients: {edge: {allow: [demo], keys: {k1: {secret: " + secret + "}}}}}\n", "dedup.store"},
		{target + "security: {keys_file: /no/such/keys.yaml}\n", "security.keys_file"},
	} {
		var cfg vrpc.Config
		err := vrpc.LoadConfig(writeFile(t, c.yaml), &cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: want an error naming %q, got %v", c.yaml, c.want, err)
		}
	}
	// An Ed25519 client needs a server key to sign its replies.
	cfg = vrpc.Config{Port: -1, Targets: map[string]vrpc.Target{"demo": {Endpoint: "x:1"}}}
	cfg.RpcBus.Type = "memory"
	cfg.Security.Clients = map[string]vconfig.ClientKeysConf{"edge": {Allow: []string{"*"}, Keys: map[string]vconfig.KeyConf{"k1": {PublicKey: pub}}}}
	if _, err := vserver.NewServer(&cfg); err == nil || !strings.Contains(err.Error(), "security.signing_key") {
		t.Errorf("Ed25519 client without a signing key: %v", err)
	}
	for _, c := range []struct{ yaml, want string }{
		{"security: {secret: " + secret + "}\n", "security.key_id: missing"},
		{"security: {key_id: k1, secret: short}\n", "secret of 5 bytes"},
		{"security: {key_id: k1}\n", "no secret or private_key"},
		{"security: {key_id: k1, private_key: nope}\n", "security.private_key"},
		{"security: {key_id: k1, secret: " + secret + ", server_keys: {s1: nope}}\n", "security.server_keys.s1"},
	} {
		var cc vrpc.ClientConfig
		err := vrpc.LoadClientConfig(writeFile(t, "client_id: edge\n"+c.yaml), &cc)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: want an error naming %q, got %v", c.yaml, c.want, err)
		}
	}
}

// TestKeyRotation: keys live in a keys file; a new key is added and the
// old one revoked without a restart, by ReloadKeys (SIGHUP in vrpc serve)
// or by the file changing; the client switches with its own ReloadKeys.
func TestKeyRotation(t *testing.T) {
	bus := memoryBus(t)
	dir := t.TempDir()
	keysFile := filepath.Join(dir, "keys.yaml")
	oldSecret, newSecret := seal.GenerateSecret(), seal.GenerateSecret()
	writeKeys := func(keys string) {
		t.Helper()
		if err := os.WriteFile(keysFile, []byte("clients:\n  rot: {allow: ['*'], keys: {"+keys+"}}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeKeys("k1: {secret: " + oldSecret + "}")
	cfg := vtest.ServerConfig(bus, map[string]vrpc.Target{"demo": {Endpoint: vtest.StartDemo(t, "demo")}})
	cfg.Security.KeysFile = keysFile
	cfg.Security.ReloadInterval = 20 * time.Millisecond
	srv := vtest.StartServer(t, cfg)

	secretFile := filepath.Join(dir, "client.secret")
	if err := os.WriteFile(secretFile, []byte(oldSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	client := vtest.StartClient(t, vclient.Config{ClientID: "rot", RpcBus: bus,
		Security: vconfig.ClientSecurityConf{KeyID: "k1", SecretFile: secretFile}})
	conn := vclient.NewConn(client, "demo")
	call := func(timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		_, err := demo.NewDemoClient(conn).Ping(ctx, &demo.Request{Message: "hi"})
		return err
	}
	if err := call(time.Minute); err != nil {
		t.Fatalf("with the first key: %v", err)
	}

	// Rotation: the server learns k2 and keeps k1 for a while.
	writeKeys("k1: {secret: " + oldSecret + "}, k2: {secret: " + newSecret + "}")
	if err := srv.ReloadKeys(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(secretFile, []byte(newSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	rotated := client.Config()
	rotated.Security.KeyID = "k2"
	// The client's own config names the new key id: a second client
	// shows the new key works, the first keeps using k1 until it reloads.
	second := vtest.StartClient(t, vclient.Config{ClientID: "rot", RpcBus: bus,
		Security: vconfig.ClientSecurityConf{KeyID: "k2", SecretFile: secretFile}})
	if _, err := demo.NewDemoClient(vclient.NewConn(second, "demo")).Ping(context.Background(), &demo.Request{Message: "k2"}); err != nil {
		t.Fatalf("with the new key: %v", err)
	}

	// k1 revoked in the file: the server reads it on its own.
	before := srv.Stats().Rejected
	writeKeys("k1: {revoked: true}, k2: {secret: " + newSecret + "}")
	deadline := time.Now().Add(time.Minute)
	for {
		err := call(200 * time.Millisecond)
		if status.Code(err) == codes.DeadlineExceeded && srv.Stats().Rejected > before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the revoked key still works a minute after the keys file changed: %v", err)
		}
	}
	// A bad keys file keeps the keys in use.
	writeKeys("k2: {secret: short}")
	if err := srv.ReloadKeys(); err == nil {
		t.Fatal("ReloadKeys took a key file with a 5-byte secret")
	}
	if _, err := demo.NewDemoClient(vclient.NewConn(second, "demo")).Ping(context.Background(), &demo.Request{Message: "k2"}); err != nil {
		t.Fatalf("after a bad keys file: %v", err)
	}
}
