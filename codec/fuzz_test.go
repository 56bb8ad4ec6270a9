package codec_test

import (
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/nextpkg/vrpc/codec"
	"github.com/nextpkg/vrpc/vrpcpb"
)

// Both decoders read bytes that anyone with access to the bus can publish:
// they must never panic, must classify every rejection, and what they
// accept must survive being encoded again unchanged (a server forwards and
// answers what it decoded).

func mustEncodeRequest(f *testing.F, req *vrpcpb.Request) []byte {
	f.Helper()
	b, err := codec.EncodeRequest(req)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

func mustEncodeResponse(f *testing.F, resp *vrpcpb.Response) []byte {
	f.Helper()
	b, err := codec.EncodeResponse(resp)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

func FuzzDecodeRequest(f *testing.F) {
	full := &vrpcpb.Request{
		Id:       "c1-0a1b2c3d4e5f-1",
		ClientId: "c1",
		ReplyTo:  "vrpc.responses.c1",
		Target:   "demo",
		Method:   "/demo.Demo/Ping",
		Payload:  []byte{0x0a, 0x02, 'h', 'i'},
		Metadata: codec.MetadataToWire(metadata.Pairs(
			"user-id", "12345", "x-multi", "a", "x-multi", "b", "x-trace-bin", "\x00\xff")),
		DeadlineUnixNano: 1_800_000_000_000_000_000,
		SentUnixNano:     1_799_999_999_000_000_000,
	}
	valid := mustEncodeRequest(f, full)
	f.Add(valid)
	f.Add(mustEncodeRequest(f, &vrpcpb.Request{Id: "i", ReplyTo: "r", Target: "t", Method: "Ping"}))
	f.Add(mustEncodeRequest(f, &vrpcpb.Request{Id: "i", ReplyTo: "r", Target: "t", Method: "M", Encoding: vrpcpb.Encoding_ENCODING_JSON, Payload: []byte(`{"a":1}`)}))
	noTarget := proto.Clone(full).(*vrpcpb.Request)
	noTarget.Target = ""
	f.Add(mustEncodeRequest(f, noTarget))
	v99 := proto.Clone(full).(*vrpcpb.Request)
	v99.Version = 99
	b, _ := proto.Marshal(v99)
	f.Add(b)
	f.Add([]byte{})
	f.Add([]byte("\xff\xff\xff\xff not protobuf"))
	f.Add(valid[:len(valid)/2])
	// An unknown field (number 100, varint) after a valid envelope: kept
	// and re-encoded, not an error.
	f.Add(append(append([]byte{}, valid...), 0xa0, 0x06, 0x01))

	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := codec.DecodeRequest(b)
		if err != nil {
			if !errors.Is(err, codec.ErrMalformed) && !errors.Is(err, codec.ErrUnsupportedVersion) {
				t.Fatalf("error %v is neither ErrMalformed nor ErrUnsupportedVersion", err)
			}
			return
		}
		if req.Version != codec.Version || req.Id == "" || req.ReplyTo == "" || req.Target == "" || req.Method == "" {
			t.Fatalf("accepted an incomplete request: %v", req)
		}
		again, err := codec.EncodeRequest(proto.Clone(req).(*vrpcpb.Request))
		if err != nil {
			t.Fatalf("accepted request does not encode again: %v", err)
		}
		back, err := codec.DecodeRequest(again)
		if err != nil {
			t.Fatalf("re-encoded request does not decode: %v", err)
		}
		if !proto.Equal(back, req) {
			t.Fatalf("round trip changed the request:\n got %v\nwant %v", back, req)
		}
		// What a server does with the metadata must not panic either.
		_ = codec.MetadataFromWire(req.Metadata)
	})
}

func FuzzDecodeResponse(f *testing.F) {
	st, err := status.New(codes.FailedPrecondition, "héllo, 世界").WithDetails(&vrpcpb.Metadata{Key: "k"})
	if err != nil {
		f.Fatal(err)
	}
	failed := &vrpcpb.Response{
		Id:               "c1-0a1b2c3d4e5f-1",
		Status:           st.Proto(),
		Header:           codec.MetadataToWire(metadata.Pairs("x-header", "h1", "x-header", "h2")),
		Trailer:          codec.MetadataToWire(metadata.Pairs("x-bin", "\x00\xff")),
		ReceivedUnixNano: 1_799_999_999_500_000_000,
		TargetNanos:      1234,
	}
	valid := mustEncodeResponse(f, failed)
	f.Add(valid)
	f.Add(mustEncodeResponse(f, &vrpcpb.Response{Id: "i", Payload: []byte("reply")}))
	b, _ := proto.Marshal(&vrpcpb.Response{Version: 2, Id: "i"})
	f.Add(b)
	f.Add([]byte{})
	f.Add([]byte("\xff\xff\xff\xff not protobuf"))
	f.Add(valid[:len(valid)/2])

	f.Fuzz(func(t *testing.T, b []byte) {
		resp, err := codec.DecodeResponse(b)
		if err != nil {
			if !errors.Is(err, codec.ErrMalformed) && !errors.Is(err, codec.ErrUnsupportedVersion) {
				t.Fatalf("error %v is neither ErrMalformed nor ErrUnsupportedVersion", err)
			}
			return
		}
		if resp.Version != codec.Version || resp.Id == "" {
			t.Fatalf("accepted an incomplete response: %v", resp)
		}
		again, err := codec.EncodeResponse(proto.Clone(resp).(*vrpcpb.Response))
		if err != nil {
			t.Fatalf("accepted response does not encode again: %v", err)
		}
		back, err := codec.DecodeResponse(again)
		if err != nil {
			t.Fatalf("re-encoded response does not decode: %v", err)
		}
		if !proto.Equal(back, resp) {
			t.Fatalf("round trip changed the response:\n got %v\nwant %v", back, resp)
		}
		// What a client does with a reply must not panic either.
		_ = codec.MetadataFromWire(resp.Header)
		_ = codec.MetadataFromWire(resp.Trailer)
		_ = status.ErrorProto(resp.Status)
	})
}

// FuzzBinaryMetadata: any bytes in a binary ("-bin") metadata value reach
// the other side unchanged through the envelope.
func FuzzBinaryMetadata(f *testing.F) {
	f.Add([]byte{0, 1, 2})
	f.Add([]byte{0xff, 0xfe, 0x80})
	f.Add([]byte("AP8="))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, v []byte) {
		req := &vrpcpb.Request{Id: "i", ReplyTo: "r", Target: "t", Method: "M",
			Metadata: codec.MetadataToWire(metadata.Pairs("x-trace-bin", string(v)))}
		b, err := codec.EncodeRequest(req)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		back, err := codec.DecodeRequest(b)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		got := codec.MetadataFromWire(back.Metadata).Get("x-trace-bin")
		if len(got) != 1 || got[0] != string(v) {
			t.Fatalf("got %q, want %q", got, v)
		}
	})
}
