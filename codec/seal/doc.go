// Package seal signs, verifies and optionally encrypts vRPC envelopes, so
// that a reader or writer of the bus who holds no key can neither run a
// call, nor answer one, nor read what a sealed one carries.
//
// # What is signed
//
// The signature is the envelope's last field (Request.signature, field 16;
// Response.signature, field 12) and covers every byte before it, as they
// travel: the target, method, call id, client id, reply address, deadline,
// issue time, key id and the payload (or its sealed form). Nothing is
// re-encoded to verify, so there is no canonical form to get wrong: a
// verifier takes the bytes up to the signature field, requires that the
// field is last and appears once, and checks the signature over them.
// Requests and replies sign under different domain strings, and a reply's
// signature also covers the client id it is for, so that a signed request
// cannot pass as a reply, nor a reply to one client as a reply to another.
//
// # Schemes
//
// A Key is either a shared secret (HMAC-SHA256, the default and the
// cheapest: about a microsecond for a small call) or an Ed25519 key pair
// (the server holds only public keys, and signs its replies with a key of
// its own that clients know by its public half). Either may carry a secret
// for AES-256-GCM sealing of the payload, metadata and trace context (of a
// request) or payload, status and metadata (of a reply); the key is derived
// from the secret with HKDF-SHA256, and the call id and client id are
// authenticated with it.
//
// # Keys
//
// Secrets are at least 32 bytes. Ed25519 keys are read from PEM (PKCS #8
// private, PKIX public) or from base64 (a 32-byte seed or public key, or a
// 64-byte private key). GenerateSecret and GenerateEd25519 make new ones.
package seal
