package seal_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/nextpkg/vrpc/codec"
	"github.com/nextpkg/vrpc/codec/seal"
	"github.com/nextpkg/vrpc/vrpcpb"
)

func secretKey(t testing.TB, id, secret string) *seal.Key {
	t.Helper()
	k, err := seal.NewSecretKey(id, []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func edKey(t testing.TB, id string, withPrivate bool) (signer, verifier *seal.Key) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	signer, err = seal.NewEd25519Key(id, nil, priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err = seal.NewEd25519Key(id, pub, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return signer, verifier
}

func request() *vrpcpb.Request {
	return &vrpcpb.Request{
		Id: "c1-42", ClientId: "edge-1", ReplyTo: "vrpc.responses.edge-1", Target: "demo",
		Method: "/demo.Demo/Ping", Payload: []byte("hello"), DeadlineUnixNano: 99, SentUnixNano: 42,
		Metadata: []*vrpcpb.Metadata{{Key: "k", Values: []string{"v"}}},
	}
}

const secret = "0123456789abcdef0123456789abcdef"

func TestSignVerifyRequest(t *testing.T) {
	hk := secretKey(t, "k1", secret)
	es, ev := edKey(t, "e1", true)
	for _, tc := range []struct {
		name         string
		sign, verify *seal.Key
	}{{"hmac", hk, hk}, {"ed25519", es, ev}} {
		t.Run(tc.name, func(t *testing.T) {
			req := request()
			b, err := seal.SignRequest(req, tc.sign)
			if err != nil {
				t.Fatal(err)
			}
			if err := seal.VerifyRequest(b, tc.verify); err != nil {
				t.Fatalf("VerifyRequest of a signed request: %v", err)
			}
			got, err := codec.DecodeRequest(b)
			if err != nil {
				t.Fatal(err)
			}
			if got.KeyId != tc.sign.ID() || got.Target != "demo" || string(got.Payload) != "hello" || len(got.Signature) == 0 {
				t.Fatalf("decoded %v", got)
			}
			// Every single-bit change anywhere is refused.
			for i := range b {
				c := bytes.Clone(b)
				c[i] ^= 0x01
				if seal.VerifyRequest(c, tc.verify) == nil {
					t.Fatalf("request with bit 0 of byte %d of %d flipped verifies", i, len(b))
				}
			}
			// A field appended after the signature is refused.
			extra := protowire.AppendTag(bytes.Clone(b), 5, protowire.BytesType)
			extra = protowire.AppendString(extra, "other")
			if err := seal.VerifyRequest(extra, tc.verify); !errors.Is(err, seal.ErrMalformed) {
				t.Fatalf("field after the signature: %v, want ErrMalformed", err)
			}
			// A second signature is refused.
			twice := protowire.AppendTag(bytes.Clone(b), seal.RequestSignatureField, protowire.BytesType)
			twice = protowire.AppendBytes(twice, got.Signature)
			if err := seal.VerifyRequest(twice, tc.verify); !errors.Is(err, seal.ErrMalformed) {
				t.Fatalf("two signatures: %v, want ErrMalformed", err)
			}
			// The signature of a request is no reply's.
			if seal.VerifyResponse(b, "", tc.verify) == nil {
				t.Fatal("a signed request verifies as a reply")
			}
		})
	}
}

func TestVerifyRefuses(t *testing.T) {
	k := secretKey(t, "k1", secret)
	other := secretKey(t, "k1", "another secret, 32 bytes or more!")
	unsigned, _ := codec.EncodeRequest(request())
	if err := seal.VerifyRequest(unsigned, k); !errors.Is(err, seal.ErrUnsigned) {
		t.Fatalf("unsigned: %v, want ErrUnsigned", err)
	}
	b, _ := seal.SignRequest(request(), other)
	if err := seal.VerifyRequest(b, k); !errors.Is(err, seal.ErrBadSignature) {
		t.Fatalf("wrong key: %v, want ErrBadSignature", err)
	}
	_, ev := edKey(t, "e1", false)
	if _, err := seal.SignRequest(request(), ev); !errors.Is(err, seal.ErrCannotSign) {
		t.Fatalf("signing with a public key: %v, want ErrCannotSign", err)
	}
	if _, err := seal.NewSecretKey("short", []byte("too short")); err == nil {
		t.Fatal("a 9-byte secret is taken")
	}
}

func TestSignVerifyResponse(t *testing.T) {
	k := secretKey(t, "k1", secret)
	resp := &vrpcpb.Response{Id: "c1-42", Payload: []byte("pong")}
	b, err := seal.SignResponse(resp, "edge-1", k)
	if err != nil {
		t.Fatal(err)
	}
	if err := seal.VerifyResponse(b, "edge-1", k); err != nil {
		t.Fatal(err)
	}
	if seal.VerifyResponse(b, "edge-2", k) == nil {
		t.Fatal("a reply signed for edge-1 verifies for edge-2")
	}
	if seal.VerifyRequest(b, k) == nil {
		t.Fatal("a signed reply verifies as a request")
	}
}

func TestSealOpen(t *testing.T) {
	k := secretKey(t, "k1", secret)
	req := request()
	want := proto.Clone(req).(*vrpcpb.Request)
	if err := seal.SealRequest(req, k); err != nil {
		t.Fatal(err)
	}
	b, err := seal.SignRequest(req, k)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("hello")) || len(req.Metadata) != 0 {
		t.Fatal("sealed request still carries its payload or metadata in clear")
	}
	got, _ := codec.DecodeRequest(b)
	if err := seal.OpenRequest(got, k); err != nil {
		t.Fatal(err)
	}
	if string(got.Payload) != "hello" || !proto.Equal(got.Metadata[0], want.Metadata[0]) {
		t.Fatalf("opened %v", got)
	}
	// Bound to the call: the sealed body moved to another call id does not open.
	moved, _ := codec.DecodeRequest(b)
	moved.Id = "c1-43"
	if err := seal.OpenRequest(moved, k); !errors.Is(err, seal.ErrOpen) {
		t.Fatalf("sealed body under another id: %v, want ErrOpen", err)
	}
	other := secretKey(t, "k1", "another secret, 32 bytes or more!")
	again, _ := codec.DecodeRequest(b)
	if err := seal.OpenRequest(again, other); !errors.Is(err, seal.ErrOpen) {
		t.Fatalf("wrong key: %v, want ErrOpen", err)
	}

	resp := &vrpcpb.Response{Id: "c1-42", Payload: []byte("pong"), Header: []*vrpcpb.Metadata{{Key: "h", Values: []string{"1"}}}}
	if err := seal.SealResponse(resp, "edge-1", k); err != nil {
		t.Fatal(err)
	}
	if err := seal.OpenResponse(proto.Clone(resp).(*vrpcpb.Response), "edge-2", k); !errors.Is(err, seal.ErrOpen) {
		t.Fatalf("reply sealed for edge-1 opened for edge-2: %v", err)
	}
	if err := seal.OpenResponse(resp, "edge-1", k); err != nil || string(resp.Payload) != "pong" || resp.Header[0].Key != "h" {
		t.Fatalf("open reply: %v, %v", err, resp)
	}
}

func TestParseKeys(t *testing.T) {
	pubPEM, privPEM, err := seal.GenerateEd25519()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := seal.ParsePublicKey(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := seal.ParsePrivateKey(privPEM)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := seal.NewEd25519Key("s1", pub, priv, nil); err != nil {
		t.Fatalf("generated pair does not match: %v", err)
	}
	_, other, _ := ed25519.GenerateKey(nil)
	if _, err := seal.NewEd25519Key("s1", pub, other, nil); err == nil {
		t.Fatal("a public key that is not the private key's is taken")
	}
	for _, bad := range []string{"", "not base64!", "AAAA"} {
		if _, err := seal.ParsePublicKey(bad); err == nil {
			t.Errorf("ParsePublicKey(%q) took it", bad)
		}
		if _, err := seal.ParsePrivateKey(bad); err == nil {
			t.Errorf("ParsePrivateKey(%q) took it", bad)
		}
	}
	if s := seal.GenerateSecret(); len(s) < seal.MinSecretBytes {
		t.Fatalf("GenerateSecret made %d bytes", len(s))
	}
}

// FuzzVerify: whatever comes off the bus, verifying neither panics nor
// accepts a message the key did not sign.
func FuzzVerify(f *testing.F) {
	k := secretKey(f, "k1", secret)
	signed, _ := seal.SignRequest(request(), k)
	f.Add(signed)
	f.Add([]byte{})
	plain, _ := codec.EncodeRequest(request())
	f.Add(plain)
	f.Fuzz(func(t *testing.T, b []byte) {
		err := seal.VerifyRequest(b, k)
		if err != nil {
			return
		}
		// It verified: it must be the signed message itself, or differ from
		// it only outside the signed bytes (not possible: everything before
		// the signature is signed, and nothing may follow it).
		if !bytes.Equal(b, signed) {
			req, derr := codec.DecodeRequest(b)
			t.Fatalf("a message the key did not sign verifies: %x (decoded %v, %v)", b, req, derr)
		}
	})
}

func BenchmarkSignVerify(b *testing.B) {
	hk, _ := seal.NewSecretKey("k1", []byte(secret))
	_, priv, _ := ed25519.GenerateKey(nil)
	ek, _ := seal.NewEd25519Key("e1", nil, priv, nil)
	for _, k := range []*seal.Key{hk, ek} {
		b.Run(string(k.Scheme()), func(b *testing.B) {
			req := request()
			b.ReportAllocs()
			for b.Loop() {
				msg, err := seal.SignRequest(req, k)
				if err != nil {
					b.Fatal(err)
				}
				if err := seal.VerifyRequest(msg, k); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
