package codec_test

import (
	"testing"

	"google.golang.org/grpc/metadata"

	"github.com/nextpkg/vrpc/codec"
)

// BenchmarkMetadata converts the metadata of a typical call, a few text
// keys and a binary one, to the envelope and back: what a call with
// metadata costs the client and the server on top of one without.
func BenchmarkMetadata(b *testing.B) {
	md := metadata.Pairs(
		"authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.ZRrHA1JJJW8opsbCGfG_HACGpVUMN_a9IV7pAx_Zmeo",
		"x-request-id", "6f1c2d3e-4a5b-6c7d-8e9f-0a1b2c3d4e5f",
		"x-tenant", "acme",
		"x-trace-bin", "\x00\x01\x02\x03",
	)
	wire := codec.MetadataToWire(md)
	b.Run("ToWire", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			codec.MetadataToWire(md)
		}
	})
	b.Run("FromWire", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			codec.MetadataFromWire(wire)
		}
	})
}
