package codec

import (
	"google.golang.org/protobuf/encoding/protowire"
)

// RequestHeader is what PeekRequest reads of a request envelope: the fields
// that say who sent it and where to answer, without its payload or
// metadata.
type RequestHeader struct {
	Id, ClientId, ReplyTo, Target, Method string
}

// PeekRequest reads the header fields of the request envelope b without
// decoding (or copying) its payload and metadata: for a server to answer,
// or log, a message too large to decode. Fields longer than max bytes are
// left empty (0: no limit), so that a sender's oversized id costs nothing
// here either. It fails only when b is not protobuf.
func PeekRequest(b []byte, max int) (RequestHeader, error) {
	var h RequestHeader
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return h, malformed("request: %v", protowire.ParseError(n))
		}
		b = b[n:]
		if typ == protowire.BytesType && num >= 2 && num <= 6 {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return h, malformed("request: %v", protowire.ParseError(n))
			}
			b = b[n:]
			if max > 0 && len(v) > max {
				continue
			}
			switch num {
			case 2:
				h.Id = string(v)
			case 3:
				h.ClientId = string(v)
			case 4:
				h.ReplyTo = string(v)
			case 5:
				h.Target = string(v)
			case 6:
				h.Method = string(v)
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return h, malformed("request: %v", protowire.ParseError(n))
		}
		b = b[n:]
	}
	return h, nil
}

// RequestSizes are the sizes of a request envelope's fields, as
// MeasureRequest reads them off the wire.
type RequestSizes struct {
	// Id, ClientId, ReplyTo, Target and Method are the lengths of those
	// fields (the longest, should one appear more than once).
	Id, ClientId, ReplyTo, Target, Method int
	// Payload is the payload's length.
	Payload int
	// Metadata is the encoded size of the metadata entries and the trace
	// context together.
	Metadata int
}

// MeasureRequest reads the sizes of the request envelope b's fields
// without decoding or copying any of them, and without allocating: for a
// server to refuse a request over its limits before it decodes it. It
// fails only when b is not protobuf.
func MeasureRequest(b []byte) (RequestSizes, error) {
	var z RequestSizes
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return z, malformed("request: %v", protowire.ParseError(n))
		}
		b = b[n:]
		if typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return z, malformed("request: %v", protowire.ParseError(n))
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return z, malformed("request: %v", protowire.ParseError(n))
		}
		b = b[n:]
		switch num {
		case 2:
			z.Id = max(z.Id, len(v))
		case 3:
			z.ClientId = max(z.ClientId, len(v))
		case 4:
			z.ReplyTo = max(z.ReplyTo, len(v))
		case 5:
			z.Target = max(z.Target, len(v))
		case 6:
			z.Method = max(z.Method, len(v))
		case 7:
			z.Payload = len(v)
		case 9, 13:
			z.Metadata += len(v)
		}
	}
	return z, nil
}
