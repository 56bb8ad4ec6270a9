package vserver

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/nextpkg/vrpc/codec/seal"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vconfig"
	"github.com/nextpkg/vrpc/vrpcpb"
	"github.com/nextpkg/vrpc/vserver/plugin"
)

// Why a request was rejected: the label of vrpc_server_rejected_total.
type rejectReason int

const (
	rejectUnsigned rejectReason = iota
	rejectUnknownClient
	rejectUnknownKey
	rejectRevoked
	rejectBadSignature
	rejectStale
	rejectFuture
	rejectWrongTopic
	rejectForeignReplyAddress
	rejectNotAllowed
	rejectNotSealed
	rejectSealed
	numRejectReasons
)

var rejectNames = [numRejectReasons]string{
	"unsigned", "unknown_client", "unknown_key", "revoked", "bad_signature", "stale", "future",
	"wrong_topic", "foreign_reply_address", "not_allowed", "not_sealed", "unsealable",
}

func (r rejectReason) String() string { return rejectNames[r] }

// keyring is what a secured server knows of its clients, replaced whole
// when the keys are read again.
type keyring struct {
	clients map[string]*securedClient
	signer  *seal.Key // signs replies to Ed25519 clients; nil: none
}

// securedClient is one client's keys and allow-list.
type securedClient struct {
	allow   plugin.AllowList
	keys    map[string]*seal.Key
	revoked map[string]bool
}

// guard authenticates requests: the security section at work.
type guard struct {
	log *slog.Logger
	cfg vconfig.SecurityConf
	// requestPrefix and responsePrefix start the topics requests come on
	// and the names of the clients' inboxes, each with its dot.
	requestPrefix, responsePrefix string
	owner                         rpcbus.InboxOwner
	ring                          atomic.Pointer[keyring]
	fileMod                       atomic.Int64 // keys_file's modification time when last read
	rejected                      [numRejectReasons]atomic.Uint64
	logged                        [numRejectReasons]atomic.Int64 // unix nanoseconds of the last log line
	unlogged                      [numRejectReasons]atomic.Uint64
}

// newGuard reads the keys; nil when security is off. request and response
// are the server's topics: requests come on "<request>.<target>", replies
// go to inboxes under "<response>.<client id>".
func newGuard(cfg vconfig.SecurityConf, request, response string, bus rpcbus.Bus, log *slog.Logger) (*guard, error) {
	if !cfg.Enabled() {
		return nil, nil
	}
	owner, ok := bus.(rpcbus.InboxOwner)
	if !ok {
		return nil, errors.New("security: this bus cannot tell whose a reply address is (rpcbus.InboxOwner), so replies could be aimed at any inbox")
	}
	g := &guard{cfg: cfg, requestPrefix: request + ".", responsePrefix: response + ".", owner: owner, log: log}
	if err := g.reload(); err != nil {
		return nil, err
	}
	return g, nil
}

// reload reads the inline clients, the keys file and the signing key, and
// puts them in place only if all of them read well.
func (g *guard) reload() error {
	clients, err := vconfig.ClientKeys("security.clients", g.cfg.Clients)
	if err != nil {
		return err
	}
	if g.cfg.KeysFile != "" {
		st, err := os.Stat(g.cfg.KeysFile)
		if err != nil {
			return fmt.Errorf("security.keys_file: %w", err)
		}
		fromFile, err := vconfig.LoadKeysFile(g.cfg.KeysFile)
		if err != nil {
			return err
		}
		for id, c := range fromFile {
			if _, dup := clients[id]; dup {
				return fmt.Errorf("security: client %q is both in security.clients and in %s; keep one", id, g.cfg.KeysFile)
			}
			clients[id] = c
		}
		g.fileMod.Store(st.ModTime().UnixNano())
	}
	signer, err := g.cfg.SigningKey.Key()
	if err != nil {
		return err
	}
	ring := &keyring{clients: make(map[string]*securedClient, len(clients)), signer: signer}
	for id, c := range clients {
		allow, err := plugin.ParseAllowList(c.Allow)
		if err != nil {
			return fmt.Errorf("security.clients.%s.allow%w", id, err)
		}
		for kid, k := range c.Keys {
			if k.Scheme() == seal.Ed25519 && signer == nil {
				return fmt.Errorf("security.clients.%s.keys.%s is an Ed25519 key: set security.signing_key, which signs the replies to such clients", id, kid)
			}
		}
		ring.clients[id] = &securedClient{allow: allow, keys: c.Keys, revoked: c.Revoked}
	}
	g.ring.Store(ring)
	return nil
}

// watch reads the keys file again whenever it changes, until quit.
func (g *guard) watch(quit <-chan struct{}, name string) {
	if g.cfg.KeysFile == "" {
		return
	}
	t := time.NewTicker(g.cfg.ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-quit:
			return
		case <-t.C:
		}
		st, err := os.Stat(g.cfg.KeysFile)
		if err != nil || st.ModTime().UnixNano() == g.fileMod.Load() {
			continue
		}
		if err := g.reload(); err != nil {
			g.errorf("vrpc server %s: keys not reloaded, the ones in use stay: %v", name, err)
			continue
		}
		g.infof("vrpc server %s: keys reloaded from %s", name, g.cfg.KeysFile)
	}
}

// rejection is a request the guard refused: never run, never answered.
type rejection struct {
	reason rejectReason
	detail string
}

func (r *rejection) Error() string { return r.reason.String() + ": " + r.detail }

func reject(reason rejectReason, format string, args ...any) *rejection {
	return &rejection{reason: reason, detail: fmt.Sprintf(format, args...)}
}

// check authenticates req, as decoded from raw, which came off topic at
// now: its signature, issue time, topic and reply address. It returns the
// client and the key that verified it, and opens a sealed body in place.
func (g *guard) check(raw []byte, req *vrpcpb.Request, topic string, now time.Time) (*securedClient, *seal.Key, *rejection) {
	if len(req.Signature) == 0 {
		return nil, nil, reject(rejectUnsigned, "client %q sent an unsigned request", req.ClientId)
	}
	ring := g.ring.Load()
	c := ring.clients[req.ClientId]
	if c == nil {
		return nil, nil, reject(rejectUnknownClient, "client %q is not configured", req.ClientId)
	}
	k := c.keys[req.KeyId]
	if k == nil {
		if c.revoked[req.KeyId] {
			return nil, nil, reject(rejectRevoked, "client %q signed with revoked key %q", req.ClientId, req.KeyId)
		}
		return nil, nil, reject(rejectUnknownKey, "client %q signed with unknown key %q", req.ClientId, req.KeyId)
	}
	if err := seal.VerifyRequest(raw, k); err != nil {
		return nil, nil, reject(rejectBadSignature, "client %q key %q: %v", req.ClientId, req.KeyId, err)
	}
	// Signed: what follows is the client's own word.
	sent := time.Unix(0, req.SentUnixNano)
	switch {
	case req.SentUnixNano == 0 || now.Sub(sent) > g.cfg.ReplayWindow+g.cfg.ClockSkew:
		return nil, nil, reject(rejectStale, "client %q request issued at %v, outside the replay window of %v", req.ClientId, sent.UTC(), g.cfg.ReplayWindow)
	case sent.Sub(now) > g.cfg.ClockSkew:
		return nil, nil, reject(rejectFuture, "client %q request issued at %v, %v ahead of this server's clock", req.ClientId, sent.UTC(), sent.Sub(now))
	}
	if topic != g.requestPrefix+req.Target {
		return nil, nil, reject(rejectWrongTopic, "client %q request for target %q came on %q", req.ClientId, req.Target, topic)
	}
	if !g.owner.InboxOf(req.ReplyTo, g.responsePrefix+req.ClientId) {
		return nil, nil, reject(rejectForeignReplyAddress, "client %q asks for replies at %q, not an inbox of its own", req.ClientId, req.ReplyTo)
	}
	if len(req.Sealed) == 0 && g.cfg.RequireEncryption {
		return nil, nil, reject(rejectNotSealed, "client %q sent a request in clear; security.require_encryption is on", req.ClientId)
	}
	if err := seal.OpenRequest(req, k); err != nil {
		return nil, nil, reject(rejectSealed, "client %q key %q: %v", req.ClientId, req.KeyId, err)
	}
	return c, k, nil
}

// replyKey is the key that signs a reply to a request verified with k:
// the client's secret, or the server's signing key for an Ed25519 client.
func (g *guard) replyKey(k *seal.Key) *seal.Key {
	if k.Scheme() == seal.HMACSHA256 {
		return k
	}
	return g.ring.Load().signer
}

// replayTTL is how long a request issued at sent must be remembered so
// that a copy of it is refused as stale rather than run again.
func (g *guard) replayTTL(sent, now time.Time) time.Duration {
	return sent.Add(g.cfg.ReplayWindow + g.cfg.ClockSkew).Sub(now)
}

// ReloadKeys reads the security section's keys (keys_file, the signing
// key) again; the keys in use stay when the new ones do not read. vrpc
// serve calls it on SIGHUP; the keys file is also read again on its own
// when it changes.
func (s *Server) ReloadKeys() error {
	if s.guard == nil {
		return errors.New("vserver: security is off; there are no keys to reload")
	}
	return s.guard.reload()
}

// logRejection logs a rejected request, at most once a second per reason
// (a flood of forged requests must not become a flood of logs), with the
// count of those not logged since.
func (g *guard) logRejection(server, id string, r *rejection) {
	now := time.Now().UnixNano()
	last := &g.logged[r.reason]
	prev := last.Load()
	if now-prev < int64(time.Second) || !last.CompareAndSwap(prev, now) {
		g.unlogged[r.reason].Add(1)
		return
	}
	more := ""
	if n := g.unlogged[r.reason].Swap(0); n > 0 {
		more = fmt.Sprintf(" (and %d more since the last one logged)", n)
	}
	g.errorf("vrpc server %s: rejected request %s: %s%s", server, plugin.Clip(id), plugin.Clip(r.Error()), more)
}

func (g *guard) errorf(format string, args ...any) { logf(g.log, slog.LevelError, format, args...) }

func (g *guard) infof(format string, args ...any) { logf(g.log, slog.LevelInfo, format, args...) }
