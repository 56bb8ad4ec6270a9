package codec

import (
	"encoding/base64"
	"slices"
	"strings"

	"google.golang.org/grpc/metadata"

	"github.com/nextpkg/vrpc/vrpcpb"
)

// MetadataToWire converts gRPC metadata to its envelope form, leaving out
// what gRPC itself sets per hop (pseudo-headers, grpc-*, content-type,
// user-agent, te), which the next hop sets anew.
//
// Values of binary keys ("-bin" suffix) hold arbitrary bytes, but envelope
// values are protobuf strings, which must be valid UTF-8: they travel
// base64-encoded, as gRPC itself sends them over HTTP/2.
func MetadataToWire(md metadata.MD) []*vrpcpb.Metadata {
	if len(md) == 0 {
		return nil
	}
	out := make([]*vrpcpb.Metadata, 0, len(md))
	entries := make([]vrpcpb.Metadata, len(md)) // one allocation for them all
	for k, vs := range md {
		if hopByHop(k) {
			continue
		}
		if isBinary(k) {
			enc := make([]string, len(vs))
			for i, v := range vs {
				enc[i] = base64.StdEncoding.EncodeToString([]byte(v))
			}
			vs = enc
		}
		e := &entries[len(out)]
		e.Key, e.Values = k, vs
		out = append(out, e)
	}
	return out
}

// MetadataFromWire converts envelope metadata back to gRPC metadata. Keys
// are lower-cased as gRPC requires. The values of text keys are in's own
// slices, not copies: in is an envelope just decoded, which nothing else
// reads.
func MetadataFromWire(in []*vrpcpb.Metadata) metadata.MD {
	if len(in) == 0 {
		return nil
	}
	md := make(metadata.MD, len(in))
	for _, m := range in {
		if hopByHop(m.Key) {
			continue
		}
		k := strings.ToLower(m.Key)
		if !isBinary(k) {
			if vs, ok := md[k]; ok {
				md[k] = append(vs, m.Values...)
			} else {
				md[k] = slices.Clip(m.Values) // an append copies it
			}
			continue
		}
		for _, v := range m.Values {
			md[k] = append(md[k], decodeBinary(v))
		}
	}
	return md
}

func isBinary(k string) bool {
	return len(k) >= 4 && strings.EqualFold(k[len(k)-4:], "-bin")
}

// decodeBinary undoes MetadataToWire's base64, padded or not (gRPC accepts
// both); a value that is not base64 is kept as it came.
func decodeBinary(v string) string {
	if b, err := base64.StdEncoding.DecodeString(v); err == nil {
		return string(b)
	}
	if b, err := base64.RawStdEncoding.DecodeString(v); err == nil {
		return string(b)
	}
	return v
}

func hopByHop(k string) bool {
	if k == "" || k[0] == ':' {
		return true
	}
	switch strings.ToLower(k) {
	case "content-type", "user-agent", "te", "connection", "grpc-timeout", "grpc-encoding",
		"grpc-accept-encoding", "grpc-status", "grpc-message", "grpc-status-details-bin":
		return true
	}
	return false
}
