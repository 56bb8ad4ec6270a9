package vtest

import (
	"testing"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/codec/seal"
	"github.com/nextpkg/vrpc/vclient"
	"github.com/nextpkg/vrpc/vconfig"
)

// e2eClientIDs are the client ids the end-to-end suite uses.
var e2eClientIDs = []string{"e2e-client", "e2e-deadline", "e2e-cancel", "e2e-alpha", "e2e-beta", "e2e-services", "e2e-ops"}

// suiteKeys are the keys of a secured end-to-end run: one per client, and
// the server's signing key.
type suiteKeys struct {
	mode      Security
	secrets   map[string]string // client id → secret
	pubs      map[string]string // client id → Ed25519 public key (PEM)
	privs     map[string]string // client id → Ed25519 private key (PEM)
	serverPub string
	serverKey string
}

func newSuiteKeys(t testing.TB, mode Security) *suiteKeys {
	t.Helper()
	if mode == Unsigned {
		return nil
	}
	k := &suiteKeys{mode: mode, secrets: map[string]string{}, pubs: map[string]string{}, privs: map[string]string{}}
	gen := func() (string, string) {
		pub, priv, err := seal.GenerateEd25519()
		if err != nil {
			t.Fatal(err)
		}
		return pub, priv
	}
	for _, id := range e2eClientIDs {
		k.secrets[id] = seal.GenerateSecret()
		if mode == Ed25519Sealed {
			k.pubs[id], k.privs[id] = gen()
		}
	}
	if mode == Ed25519Sealed {
		k.serverPub, k.serverKey = gen()
	}
	return k
}

// secureServer gives cfg the suite's clients.
func (k *suiteKeys) secureServer(cfg *vrpc.Config) {
	if k == nil {
		return
	}
	cfg.Security.Clients = map[string]vconfig.ClientKeysConf{}
	for _, id := range e2eClientIDs {
		kc := vconfig.KeyConf{Secret: k.secrets[id], PublicKey: k.pubs[id]}
		cfg.Security.Clients[id] = vconfig.ClientKeysConf{Allow: []string{"*"}, Keys: map[string]vconfig.KeyConf{"k1": kc}}
	}
	if k.mode == Ed25519Sealed {
		cfg.Security.SigningKey = vconfig.SigningKeyConf{ID: "server-1", PrivateKey: k.serverKey}
		cfg.Security.RequireEncryption = true
	}
}

// secureClient gives cfg its key.
func (k *suiteKeys) secureClient(cfg *vclient.Config) {
	if k == nil {
		return
	}
	cfg.Security = vconfig.ClientSecurityConf{KeyID: "k1", Secret: k.secrets[cfg.ClientID]}
	if k.mode == Ed25519Sealed {
		cfg.Security.PrivateKey = k.privs[cfg.ClientID]
		cfg.Security.ServerKeys = map[string]string{"server-1": k.serverPub}
		cfg.Security.Encrypt = true
	}
}
