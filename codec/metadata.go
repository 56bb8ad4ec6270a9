package codec

import (
	"strings"

	"google.golang.org/grpc/metadata"

	"github.com/nextpkg/vrpc/vrpcpb"
)

// MetadataToWire converts gRPC metadata to its envelope form, leaving out
// what gRPC itself sets per hop (pseudo-headers, grpc-*, content-type,
// user-agent, te), which the next hop sets anew.
func MetadataToWire(md metadata.MD) []*vrpcpb.Metadata {
	if len(md) == 0 {
		return nil
	}
	out := make([]*vrpcpb.Metadata, 0, len(md))
	for k, vs := range md {
		if hopByHop(k) {
			continue
		}
		out = append(out, &vrpcpb.Metadata{Key: k, Values: vs})
	}
	return out
}

// MetadataFromWire converts envelope metadata back to gRPC metadata. Keys
// are lower-cased as gRPC requires.
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
		md[k] = append(md[k], m.Values...)
	}
	return md
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
