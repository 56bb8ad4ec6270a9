package vconfig

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/nextpkg/vrpc/codec/seal"
)

// Defaults of the security section.
const (
	DefaultReplayWindow   = 5 * time.Minute
	DefaultClockSkew      = 30 * time.Second
	DefaultReloadInterval = 10 * time.Second
)

// SecurityConf is the server's security section: the clients it serves,
// their keys and what they may call. With at least one client (inline or
// in keys_file), every request must be signed by a key of its client id;
// the server signs its replies. See README.md, "Security".
type SecurityConf struct {
	// ReplayWindow is how old a request's issue time may be; ClockSkew how
	// far in the future. Within the window a request is remembered by the
	// dedup store, so that a copy of it is never run again.
	ReplayWindow time.Duration `json:"replay_window,default=5m"`
	ClockSkew    time.Duration `json:"clock_skew,default=30s"`
	// RequireEncryption refuses requests whose body is not sealed.
	RequireEncryption bool `json:"require_encryption,optional"`
	// SigningKey is the server's own Ed25519 key: it signs the replies to
	// clients whose keys are Ed25519 (clients with a secret get replies
	// signed with their secret). Clients know it by its public half.
	SigningKey SigningKeyConf `json:"signing_key,optional"`
	// KeysFile is a YAML file of more clients, in the form of Clients
	// (a top-level clients: key), read again when it changes (checked
	// every ReloadInterval) and on SIGHUP (vrpc serve).
	KeysFile       string        `json:"keys_file,optional"`
	ReloadInterval time.Duration `json:"reload_interval,default=10s"`
	// Clients are the callers, by client id.
	Clients map[string]ClientKeysConf `json:"clients,optional"`
}

// SigningKeyConf is an Ed25519 private key, inline or in a file: PEM
// (PKCS #8), or base64 of the 32-byte seed.
type SigningKeyConf struct {
	ID             string `json:"id,optional"`
	PrivateKey     string `json:"private_key,optional"`
	PrivateKeyFile string `json:"private_key_file,optional"`
}

// ClientKeysConf is one client of a secured server.
type ClientKeysConf struct {
	// Allow is what the client may call, checked after its signature:
	// "*", "<target>", "<target>/<pkg.Service>/*" or
	// "<target>/<pkg.Service>/<Method>".
	Allow []string `json:"allow,optional"`
	// Keys are the client's keys by key id: several during a rotation.
	Keys map[string]KeyConf `json:"keys,optional"`
}

// KeyConf is one key of a client: a secret (HMAC-SHA256, and sealing) or
// an Ed25519 public key (with a secret too when the client seals),
// inline or in files. Use ${ENV} in YAML to take one from the
// environment.
type KeyConf struct {
	Secret        string `json:"secret,optional"`
	SecretFile    string `json:"secret_file,optional"`
	PublicKey     string `json:"public_key,optional"`
	PublicKeyFile string `json:"public_key_file,optional"`
	// Revoked keeps the key id known and refused: a request signed with it
	// is counted as revoked, not as an unknown key.
	Revoked bool `json:"revoked,optional"`
}

// Enabled reports whether the server authenticates requests.
func (s *SecurityConf) Enabled() bool { return len(s.Clients) > 0 || s.KeysFile != "" }

// setDefaults fills the zero durations.
func (s *SecurityConf) setDefaults() {
	if s.ReplayWindow == 0 {
		s.ReplayWindow = DefaultReplayWindow
	}
	if s.ClockSkew == 0 {
		s.ClockSkew = DefaultClockSkew
	}
	if s.ReloadInterval == 0 {
		s.ReloadInterval = DefaultReloadInterval
	}
}

// validate reports every invalid value under the key security.
func (s *SecurityConf) validate(dedupStore string) []error {
	if !s.Enabled() {
		return nil
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if s.ReplayWindow < 0 || s.ClockSkew < 0 || s.ReloadInterval < 0 {
		bad("security: replay_window, clock_skew and reload_interval must be positive")
	}
	if dedupStore == "none" {
		bad("security: needs a dedup store to remember requests within replay_window; set dedup.store to memory (this server) or redis (shared, and across restarts)")
	}
	if s.SigningKey.PrivateKey != "" || s.SigningKey.PrivateKeyFile != "" {
		if _, err := s.SigningKey.Key(); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := ClientKeys("security.clients", s.Clients); err != nil {
		errs = append(errs, err)
	}
	if s.KeysFile != "" {
		if _, err := LoadKeysFile(s.KeysFile); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// Key reads the server's signing key; nil when none is configured.
func (s SigningKeyConf) Key() (*seal.Key, error) {
	text, err := inlineOrFile("security.signing_key.private_key", s.PrivateKey, s.PrivateKeyFile)
	if err != nil || text == "" {
		return nil, err
	}
	if s.ID == "" {
		return nil, errors.New("security.signing_key.id: missing; name the key, e.g. server-2026")
	}
	priv, err := seal.ParsePrivateKey(text)
	if err != nil {
		return nil, fmt.Errorf("security.signing_key: %w", err)
	}
	return seal.NewEd25519Key(s.ID, nil, priv, nil)
}

// Client is a client's keys and allow-list, read and checked.
type Client struct {
	Allow []string
	// Keys are the usable keys by id; Revoked the ids refused.
	Keys    map[string]*seal.Key
	Revoked map[string]bool
}

// ClientKeys reads and checks the clients of a security section (or a
// keys file); errors name their keys under prefix.
func ClientKeys(prefix string, clients map[string]ClientKeysConf) (map[string]*Client, error) {
	ids := make([]string, 0, len(clients))
	for id := range clients {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var errs []error
	out := make(map[string]*Client, len(clients))
	for _, id := range ids {
		cc, at := clients[id], prefix+"."+id
		c := &Client{Allow: cc.Allow, Keys: map[string]*seal.Key{}, Revoked: map[string]bool{}}
		if len(cc.Allow) == 0 {
			errs = append(errs, fmt.Errorf(`%s.allow: empty; list what the client may call, e.g. allow: [demo] or ["*"]`, at))
		}
		if len(cc.Keys) == 0 {
			errs = append(errs, fmt.Errorf("%s.keys: none; give the client a key, e.g. keys: {k1: {secret: ${%s_SECRET}}}", at, envName(id)))
		}
		for kid, kc := range cc.Keys {
			if kc.Revoked {
				c.Revoked[kid] = true
				continue
			}
			k, err := kc.Key(at+".keys."+kid, kid)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			c.Keys[kid] = k
		}
		out[id] = c
	}
	return out, errors.Join(errs...)
}

// Key reads the key kid; at names it in errors.
func (k KeyConf) Key(at, kid string) (*seal.Key, error) {
	secret, err := inlineOrFile(at+".secret", k.Secret, k.SecretFile)
	if err != nil {
		return nil, err
	}
	pubText, err := inlineOrFile(at+".public_key", k.PublicKey, k.PublicKeyFile)
	if err != nil {
		return nil, err
	}
	var key *seal.Key
	switch {
	case pubText != "":
		pub, perr := seal.ParsePublicKey(pubText)
		if perr != nil {
			return nil, fmt.Errorf("%s.public_key: %w", at, perr)
		}
		var sec []byte
		if secret != "" {
			sec = []byte(secret)
		}
		key, err = seal.NewEd25519Key(kid, pub, nil, sec)
	case secret != "":
		key, err = seal.NewSecretKey(kid, []byte(secret))
	default:
		return nil, fmt.Errorf("%s: no secret or public_key; set one (vrpc keygen makes both), or revoked: true", at)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", at, err)
	}
	return key, nil
}

// keysFile is the form of security.keys_file.
type keysFile struct {
	Clients map[string]ClientKeysConf `json:"clients"`
}

// LoadKeysFile reads a keys file (security.keys_file), expanding ${ENV}.
func LoadKeysFile(path string) (map[string]*Client, error) {
	var f keysFile
	if err := LoadFile(path, &f); err != nil {
		return nil, fmt.Errorf("security.keys_file %s: %w", path, err)
	}
	return ClientKeys("security.keys_file "+path+": clients", f.Clients)
}

// inlineOrFile returns the inline value, or the trimmed content of file;
// at most one of them may be set.
func inlineOrFile(at, inline, file string) (string, error) {
	switch {
	case inline != "" && file != "":
		return "", fmt.Errorf("%s and %s_file: both set; keep one", at, at)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s_file: %w", at, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return inline, nil
}

// envName is a client id as an environment variable name, for examples.
func envName(id string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' {
			return r - 'a' + 'A'
		}
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			return r
		}
		return '_'
	}, id)
}

// ClientSecurityConf is the client's security section: its key, the
// server keys it takes replies from, and whether it seals its calls.
type ClientSecurityConf struct {
	// KeyID names the key the server knows the client by
	// (security.clients.<client_id>.keys.<key_id> there).
	KeyID string `json:"key_id,optional"`
	// Secret signs requests with HMAC-SHA256 (and seals, with Encrypt).
	Secret     string `json:"secret,optional"`
	SecretFile string `json:"secret_file,optional"`
	// PrivateKey signs with Ed25519 instead; Secret then only seals.
	PrivateKey     string `json:"private_key,optional"`
	PrivateKeyFile string `json:"private_key_file,optional"`
	// ServerKeys are the public keys of the servers' signing keys, by id:
	// an Ed25519 client takes only replies signed with one of them.
	ServerKeys map[string]string `json:"server_keys,optional"`
	// Encrypt seals every request body (and so every reply's).
	Encrypt bool `json:"encrypt,optional"`
}

// Enabled reports whether the client signs its requests.
func (c *ClientSecurityConf) Enabled() bool { return c.KeyID != "" }

// Keys reads the client's key and the server keys it trusts.
func (c *ClientSecurityConf) Keys() (own *seal.Key, servers map[string]*seal.Key, err error) {
	secret, err := inlineOrFile("security.secret", c.Secret, c.SecretFile)
	if err != nil {
		return nil, nil, err
	}
	privText, err := inlineOrFile("security.private_key", c.PrivateKey, c.PrivateKeyFile)
	if err != nil {
		return nil, nil, err
	}
	var sec []byte
	if secret != "" {
		sec = []byte(secret)
	}
	switch {
	case privText != "":
		priv, perr := seal.ParsePrivateKey(privText)
		if perr != nil {
			return nil, nil, fmt.Errorf("security.private_key: %w", perr)
		}
		own, err = seal.NewEd25519Key(c.KeyID, nil, priv, sec)
		if err == nil && len(c.ServerKeys) == 0 {
			err = errors.New("server_keys: none; an Ed25519 client takes only replies signed with a server's key: add the public half of the server's security.signing_key")
		}
	case secret != "":
		own, err = seal.NewSecretKey(c.KeyID, sec)
	default:
		err = errors.New("no secret or private_key; set one (vrpc keygen makes both)")
	}
	if err == nil && c.Encrypt && !own.CanSeal() {
		err = errors.New("encrypt: true needs a secret to seal with")
	}
	if err != nil {
		return nil, nil, fmt.Errorf("security: %w", err)
	}
	servers = make(map[string]*seal.Key, len(c.ServerKeys))
	for id, text := range c.ServerKeys {
		pub, perr := seal.ParsePublicKey(text)
		if perr == nil {
			servers[id], perr = seal.NewEd25519Key(id, pub, nil, nil)
		}
		if perr != nil {
			return nil, nil, fmt.Errorf("security.server_keys.%s: %w", id, perr)
		}
	}
	return own, servers, nil
}
