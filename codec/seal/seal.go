package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"sync"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Scheme names a signature scheme.
type Scheme string

// The signature schemes.
const (
	HMACSHA256 Scheme = "hmac-sha256"
	Ed25519    Scheme = "ed25519"
)

// MinSecretBytes is the shortest secret a Key takes.
const MinSecretBytes = 32

// Domains keep a signature of one kind of message from passing as
// another's.
const (
	requestDomain = "vrpc request v1\x00"
	replyDomain   = "vrpc reply v1\x00"
)

// Errors of verification. They are meant for logs and metrics, never for a
// reply: an unverified message gets none.
var (
	// ErrUnsigned: the message has no signature.
	ErrUnsigned = errors.New("not signed")
	// ErrMalformed: the signature field is not the message's last field, or
	// appears twice, or the message cannot be parsed.
	ErrMalformed = errors.New("signature field malformed or not last")
	// ErrBadSignature: the signature does not verify with the key.
	ErrBadSignature = errors.New("bad signature")
	// ErrCannotSign: the key holds no private half or secret to sign with.
	ErrCannotSign = errors.New("key cannot sign")
	// ErrNoSecret: the key has no secret to seal or open with.
	ErrNoSecret = errors.New("key has no secret to seal with")
	// ErrOpen: a sealed body did not open (wrong key, or tampered).
	ErrOpen = errors.New("sealed body does not open")
)

// Key is one key of a client or a server: an HMAC-SHA256 secret, or an
// Ed25519 public key (and its private half where it signs), with an
// optional secret for sealing. A Key is safe for concurrent use.
type Key struct {
	id     string
	scheme Scheme
	macs   *sync.Pool // of hash.Hash, HMAC-SHA256 keyed with the secret
	pub    ed25519.PublicKey
	priv   ed25519.PrivateKey
	aead   cipher.AEAD // nil without a secret
}

// NewSecretKey returns an HMAC-SHA256 key: secret signs and verifies, and
// seals. secret is at least MinSecretBytes long.
func NewSecretKey(id string, secret []byte) (*Key, error) {
	if err := checkSecret(secret); err != nil {
		return nil, err
	}
	secret = append([]byte(nil), secret...)
	k := &Key{id: id, scheme: HMACSHA256}
	k.macs = &sync.Pool{New: func() any { return hmac.New(sha256.New, secret) }}
	return k, k.setSecret(secret)
}

// NewEd25519Key returns an Ed25519 key: pub verifies; priv, when not nil,
// signs (it must be pub's private half). secret, when not nil, seals; it
// is never used to sign.
func NewEd25519Key(id string, pub ed25519.PublicKey, priv ed25519.PrivateKey, secret []byte) (*Key, error) {
	if priv != nil {
		if len(priv) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("ed25519 private key of %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
		}
		derived := priv.Public().(ed25519.PublicKey)
		if pub == nil {
			pub = derived
		} else if !pub.Equal(derived) {
			return nil, errors.New("ed25519 public key is not the private key's")
		}
	}
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("ed25519 public key of %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	k := &Key{id: id, scheme: Ed25519, pub: pub, priv: priv}
	if secret != nil {
		if err := checkSecret(secret); err != nil {
			return nil, err
		}
		if err := k.setSecret(secret); err != nil {
			return nil, err
		}
	}
	return k, nil
}

func checkSecret(secret []byte) error {
	if len(secret) < MinSecretBytes {
		return fmt.Errorf("secret of %d bytes, want at least %d (make one with vrpc keygen)", len(secret), MinSecretBytes)
	}
	return nil
}

// setSecret derives the key's AES-256-GCM key from secret.
func (k *Key) setSecret(secret []byte) error {
	aesKey, err := hkdf.Key(sha256.New, secret, nil, "vrpc aes-256-gcm", 32)
	if err != nil {
		return err
	}
	block, err := aes.NewCipher(aesKey)
	if err != nil {
		return err
	}
	k.aead, err = cipher.NewGCM(block)
	return err
}

// ID returns the key's id, which signed messages carry.
func (k *Key) ID() string { return k.id }

// Scheme returns the key's signature scheme.
func (k *Key) Scheme() Scheme { return k.scheme }

// CanSign reports whether the key signs (a secret, or a private half).
func (k *Key) CanSign() bool { return k.scheme == HMACSHA256 || k.priv != nil }

// CanSeal reports whether the key seals and opens (it has a secret).
func (k *Key) CanSeal() bool { return k.aead != nil }

// prefix is what the signed input starts with: the domain, then the
// length-prefixed context.
func prefix(dst []byte, domain, context string) []byte {
	dst = append(dst, domain...)
	dst = binary.AppendUvarint(dst, uint64(len(context)))
	return append(dst, context...)
}

// Prefixes without a context, made once: the hash's Write takes a slice,
// which escapes, so a prefix made per call would be an allocation.
var (
	requestPrefix = prefix(nil, requestDomain, "")
	replyPrefix   = prefix(nil, replyDomain, "")
)

// prefixes holds buffers for the prefixes with a context.
var prefixes = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// sum writes the signed input (domain, then the length-prefixed context,
// then b) to h and appends its sum to dst.
func sum(h hash.Hash, domain, context string, b []byte, dst []byte) []byte {
	switch {
	case context == "" && domain == requestDomain:
		h.Write(requestPrefix)
	case context == "" && domain == replyDomain:
		h.Write(replyPrefix)
	default:
		buf := prefixes.Get().(*[]byte)
		*buf = prefix((*buf)[:0], domain, context)
		h.Write(*buf)
		prefixes.Put(buf)
	}
	h.Write(b)
	return h.Sum(dst)
}

// signature returns the signature of b under domain and context.
func (k *Key) signature(domain, context string, b []byte, dst []byte) ([]byte, error) {
	switch {
	case k.scheme == HMACSHA256:
		mac := k.macs.Get().(hash.Hash)
		mac.Reset()
		dst = sum(mac, domain, context, b, dst)
		k.macs.Put(mac)
		return dst, nil
	case k.priv != nil:
		var digest [sha256.Size]byte
		return append(dst, ed25519.Sign(k.priv, sum(sha256.New(), domain, context, b, digest[:0]))...), nil
	}
	return nil, ErrCannotSign
}

// verify reports whether sig is k's signature of b under domain and
// context.
func (k *Key) verify(domain, context string, b, sig []byte) bool {
	if k.scheme == HMACSHA256 {
		var want [sha256.Size]byte
		mac := k.macs.Get().(hash.Hash)
		mac.Reset()
		sum(mac, domain, context, b, want[:0])
		k.macs.Put(mac)
		return hmac.Equal(want[:], sig)
	}
	var digest [sha256.Size]byte
	return ed25519.Verify(k.pub, sum(sha256.New(), domain, context, b, digest[:0]), sig)
}

// sigFieldSize is the most a signature field takes.
const sigFieldSize = 2 + 1 + ed25519.SignatureSize

// appendSigned appends to b, an encoded envelope without its signature, the
// signature field: the field number field holding k's signature of b. It
// appends in place when b has room (see encode).
func (k *Key) appendSigned(b []byte, field protowire.Number, domain, context string) ([]byte, error) {
	size := sha256.Size
	if k.scheme == Ed25519 {
		size = ed25519.SignatureSize
	}
	n := len(b)
	out := protowire.AppendTag(b, field, protowire.BytesType)
	out = protowire.AppendVarint(out, uint64(size))
	out, err := k.signature(domain, context, out[:n], out)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// encode marshals m with room after it for a signature field.
func encode(m proto.Message) ([]byte, error) {
	size := proto.Size(m)
	return proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(make([]byte, 0, size+sigFieldSize), m)
}

// Split returns the bytes of an encoded envelope that its signature covers,
// and the signature: field number field must be b's last field, of the
// bytes type, and appear once.
func Split(b []byte, field protowire.Number) (signed, sig []byte, err error) {
	start := -1
	for off := 0; off < len(b); {
		num, typ, n := protowire.ConsumeTag(b[off:])
		if n < 0 {
			return nil, nil, ErrMalformed
		}
		m := protowire.ConsumeFieldValue(num, typ, b[off+n:])
		if m < 0 {
			return nil, nil, ErrMalformed
		}
		if num == field {
			if start >= 0 || typ != protowire.BytesType {
				return nil, nil, ErrMalformed
			}
			start = off
			sig, _ = protowire.ConsumeBytes(b[off+n:])
		} else if start >= 0 {
			return nil, nil, ErrMalformed // a field after the signature
		}
		off += n + m
	}
	if start < 0 || len(sig) == 0 {
		return nil, nil, ErrUnsigned
	}
	return b[:start], sig, nil
}

// sealed encrypts plaintext with a fresh nonce, which it puts before the
// ciphertext; aad is authenticated with it.
func (k *Key) seal(plaintext, aad []byte) ([]byte, error) {
	if k.aead == nil {
		return nil, ErrNoSecret
	}
	ns := k.aead.NonceSize()
	out := make([]byte, ns, ns+len(plaintext)+k.aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		return nil, err
	}
	return k.aead.Seal(out, out[:ns], plaintext, aad), nil
}

// open decrypts what seal made.
func (k *Key) open(sealed, aad []byte) ([]byte, error) {
	if k.aead == nil {
		return nil, ErrNoSecret
	}
	ns := k.aead.NonceSize()
	if len(sealed) < ns+k.aead.Overhead() {
		return nil, ErrOpen
	}
	out, err := k.aead.Open(nil, sealed[:ns], sealed[ns:], aad)
	if err != nil {
		return nil, ErrOpen
	}
	return out, nil
}

// aad is what a sealed body is bound to: its kind, the call id and the
// client id, each length-prefixed.
func aad(kind, id, clientID string) []byte {
	b := make([]byte, 0, len(kind)+len(id)+len(clientID)+3*binary.MaxVarintLen64)
	for _, s := range [...]string{kind, id, clientID} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}
