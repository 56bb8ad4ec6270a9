package nats

import (
	"encoding/base64"
	"strings"

	natsgo "github.com/nats-io/nats.go"

	"github.com/nextpkg/vrpc/rpcbus"
)

// A message's Value is the NATS payload. Its Key and Headers travel as
// NATS headers, whose names are prefixed so that no user header can pass
// for one of NATS's own ("Nats-Msg-Id" would turn on JetStream's
// de-duplication). NATS trims header values and replaces CR and LF, so a
// key or value that would not survive that (or a name that is not a plain
// token) travels base64-encoded under a second prefix.
const (
	hdrKey       = "Vrpc-Key"
	hdrKeyB64    = "Vrpc-Key-B64"
	hdrPlain     = "Vrpc-H-"  // + name: value
	hdrEncoded   = "Vrpc-HB-" // + base64url(name): base64(value)
	headerBudget = 64         // header bytes MaxPayload leaves for a small key
)

var (
	b64    = base64.StdEncoding
	b64url = base64.RawURLEncoding
)

// encodeHeader returns the NATS headers that carry m's Key and Headers,
// nil when it has neither: the hot path sends a bare payload.
func encodeHeader(m *rpcbus.Message) natsgo.Header {
	if len(m.Key) == 0 && len(m.Headers) == 0 {
		return nil
	}
	h := make(natsgo.Header, len(m.Headers)+1)
	if len(m.Key) > 0 {
		if k := string(m.Key); plainValue(k) {
			h[hdrKey] = []string{k}
		} else {
			h[hdrKeyB64] = []string{b64.EncodeToString(m.Key)}
		}
	}
	for k, v := range m.Headers {
		if plainName(k) && plainValue(v) {
			h[hdrPlain+k] = []string{v}
		} else {
			h[hdrEncoded+b64url.EncodeToString([]byte(k))] = []string{b64.EncodeToString([]byte(v))}
		}
	}
	return h
}

// decodeHeader is the inverse of encodeHeader. Headers it does not know,
// such as those NATS adds, are ignored, as are encoded ones that do not
// decode: they come off the network.
func decodeHeader(h natsgo.Header, m *rpcbus.Message) {
	for name, vs := range h {
		if len(vs) == 0 {
			continue
		}
		v := vs[0]
		switch {
		case name == hdrKey:
			m.Key = []byte(v)
		case name == hdrKeyB64:
			if k, err := b64.DecodeString(v); err == nil {
				m.Key = k
			}
		case strings.HasPrefix(name, hdrPlain):
			setHeader(m, name[len(hdrPlain):], v)
		case strings.HasPrefix(name, hdrEncoded):
			k, err1 := b64url.DecodeString(name[len(hdrEncoded):])
			val, err2 := b64.DecodeString(v)
			if err1 == nil && err2 == nil {
				setHeader(m, string(k), string(val))
			}
		}
	}
}

func setHeader(m *rpcbus.Message, k, v string) {
	if m.Headers == nil {
		m.Headers = make(map[string]string)
	}
	m.Headers[k] = v
}

// toMessage converts a received NATS message.
func toMessage(msg *natsgo.Msg) rpcbus.Message {
	m := rpcbus.Message{Topic: msg.Subject, Value: msg.Data}
	if len(msg.Header) > 0 {
		decodeHeader(msg.Header, &m)
	}
	return m
}

// plainName reports whether a header name can follow hdrPlain as it is.
func plainName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// plainValue reports whether NATS carries s unchanged as a header value:
// printable ASCII, nothing for it to trim at either end.
func plainValue(s string) bool {
	if s != "" && (s[0] == ' ' || s[len(s)-1] == ' ') {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}
