package nats

import (
	"bytes"
	"maps"
	"strings"
	"testing"

	natsgo "github.com/nats-io/nats.go"

	"github.com/nextpkg/vrpc/rpcbus"
)

// wire passes h through NATS's header encoding as nats.go writes it
// (values trimmed, CR and LF replaced by spaces) and parses it back.
func wire(t testing.TB, h natsgo.Header) natsgo.Header {
	t.Helper()
	if len(h) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString("NATS/1.0\r\n")
	for k, vs := range h {
		for _, v := range vs {
			v = strings.NewReplacer("\r", " ", "\n", " ").Replace(strings.TrimSpace(v))
			b.WriteString(k + ": " + v + "\r\n")
		}
	}
	b.WriteString("\r\n")
	out, err := natsgo.DecodeHeadersMsg([]byte(b.String()))
	if err != nil {
		t.Fatalf("headers %q do not parse: %v", b.String(), err)
	}
	return out
}

func roundTrip(t testing.TB, key []byte, headers map[string]string) rpcbus.Message {
	t.Helper()
	h := wire(t, encodeHeader(&rpcbus.Message{Key: key, Headers: headers}))
	var m rpcbus.Message
	decodeHeader(h, &m)
	return m
}

func TestHeaderRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		key     []byte
		headers map[string]string
	}{
		{"none", nil, nil},
		{"plain", []byte("key-1"), map[string]string{"vrpc-test": "header value", "empty": ""}},
		{"binary key", []byte{0, 1, 2, '\r', '\n', 0xff}, nil},
		{"spaces at the ends", []byte(" k "), map[string]string{"h": " v "}},
		{"CR LF in value", nil, map[string]string{"h": "a\r\nb"}},
		{"odd names", nil, map[string]string{"a b": "1", "x:y": "2", "": "3", "é": "4", "Nats-Msg-Id": "5"}},
		{"non-ASCII value", nil, map[string]string{"h": "héllo, 世界"}},
		{"our own prefixes", nil, map[string]string{hdrKey: "k", hdrPlain + "x": "y", hdrEncoded: "z"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := roundTrip(t, tc.key, tc.headers)
			if !bytes.Equal(m.Key, tc.key) {
				t.Errorf("key %q came back as %q", tc.key, m.Key)
			}
			if !maps.Equal(m.Headers, tc.headers) {
				t.Errorf("headers %q came back as %q", tc.headers, m.Headers)
			}
		})
	}
}

// A user header can never become a NATS header: "Nats-Msg-Id" would
// switch on JetStream's de-duplication.
func TestHeaderNamesArePrefixed(t *testing.T) {
	t.Parallel()
	h := encodeHeader(&rpcbus.Message{Key: []byte("k"), Headers: map[string]string{"Nats-Msg-Id": "1", "x": "2"}})
	for name := range h {
		if !strings.HasPrefix(name, "Vrpc-") {
			t.Errorf("header %q is not under the Vrpc- prefix", name)
		}
	}
}

// FuzzHeader: a key and header of any bytes come back unchanged, and
// decoding whatever headers arrive never panics.
func FuzzHeader(f *testing.F) {
	f.Add([]byte("k"), "name", "value")
	f.Add([]byte{0, 0xff}, "a b", " v\r\n")
	f.Add([]byte(nil), "", "")
	f.Fuzz(func(t *testing.T, key []byte, name, value string) {
		if len(key) == 0 {
			key = nil
		}
		m := roundTrip(t, key, map[string]string{name: value})
		if !bytes.Equal(m.Key, key) || m.Headers[name] != value || len(m.Headers) != 1 {
			t.Fatalf("key %q header %q: %q came back as key %q headers %q", key, name, value, m.Key, m.Headers)
		}
		// Arbitrary headers off the network.
		var junk rpcbus.Message
		decodeHeader(natsgo.Header{name: {value}, hdrEncoded + name: {value}, hdrKeyB64: {value}, hdrPlain + name: {string(key)}}, &junk)
	})
}
