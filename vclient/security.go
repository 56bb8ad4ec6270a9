package vclient

import (
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nextpkg/vrpc/codec/seal"
	"github.com/nextpkg/vrpc/vrpcpb"
)

// keys is what a signing client holds, replaced whole by ReloadKeys.
type keys struct {
	own *seal.Key // signs requests (and seals them, with encrypt)
	// mine are the client's keys by id, the one in use and the one before
	// it (replies to calls signed before a rotation still verify and open).
	mine    map[string]*seal.Key
	servers map[string]*seal.Key // the servers' signing keys, by id
}

// signer is a client's security at work.
type signer struct {
	log     *slog.Logger
	encrypt bool
	keys    atomic.Pointer[keys]
	lastLog atomic.Int64 // unix nanoseconds of the last forged-reply log line
}

func newSigner(cfg Config) (*signer, error) {
	if !cfg.Security.Enabled() {
		return nil, nil
	}
	s := &signer{encrypt: cfg.Security.Encrypt}
	own, servers, err := cfg.Security.Keys()
	if err != nil {
		return nil, err
	}
	s.keys.Store(&keys{own: own, mine: map[string]*seal.Key{own.ID(): own}, servers: servers})
	return s, nil
}

// sign encodes req, sealed when the client encrypts, and signed.
func (s *signer) sign(req *vrpcpb.Request) ([]byte, error) {
	k := s.keys.Load().own
	if s.encrypt {
		if err := seal.SealRequest(req, k); err != nil {
			return nil, err
		}
	}
	return seal.SignRequest(req, k)
}

// verify checks that a reply, raw as it came and decoded as resp, is
// signed for clientID by the client's own secret or a server's signing
// key, and opens a sealed body in place.
func (s *signer) verify(raw []byte, resp *vrpcpb.Response, clientID string) error {
	ks := s.keys.Load()
	k := ks.mine[resp.KeyId]
	if k == nil || k.Scheme() != seal.HMACSHA256 {
		// A reply signs with the client's own key only when that is a
		// secret: an Ed25519 client's replies carry a server's signature.
		k = ks.servers[resp.KeyId]
	}
	if k == nil {
		if len(resp.Signature) == 0 {
			return seal.ErrUnsigned
		}
		return fmt.Errorf("key %q is neither this client's secret nor a server key it knows", resp.KeyId)
	}
	if err := seal.VerifyResponse(raw, clientID, k); err != nil {
		return err
	}
	if len(resp.Sealed) == 0 {
		return nil
	}
	var err error = seal.ErrNoSecret
	for _, mk := range ks.mine {
		if mk.CanSeal() {
			if err = seal.OpenResponse(resp, clientID, mk); err == nil {
				return nil
			}
		}
	}
	return err
}

// forged logs a reply that did not verify, at most once a second.
func (s *signer) forged(topic, id string, err error) {
	now := time.Now().UnixNano()
	last := s.lastLog.Load()
	if now-last < int64(time.Second) || !s.lastLog.CompareAndSwap(last, now) {
		return
	}
	if len(id) > 128 {
		id = id[:128] + "…"
	}
	logf(s.log, slog.LevelError, "vrpc: dropping a reply on %s for %q that does not verify (%v); the call waits for the real one", topic, id, err)
}

// ReloadKeys reads the client's key and the server keys again (the
// secret_file and private_key_file among them): calls from now on are
// signed with the new key, and replies to calls signed with the one before
// still verify. It returns an error, and keeps the keys in use, when the
// new ones do not read.
func (c *Client) ReloadKeys() error {
	if c.signer == nil {
		return errors.New("vclient: security is off; there are no keys to reload")
	}
	own, servers, err := c.cfg.Security.Keys()
	if err != nil {
		return err
	}
	prev := c.signer.keys.Load()
	mine := map[string]*seal.Key{own.ID(): own}
	if prev.own.ID() != own.ID() {
		mine[prev.own.ID()] = prev.own
	}
	c.signer.keys.Store(&keys{own: own, mine: mine, servers: servers})
	return nil
}
