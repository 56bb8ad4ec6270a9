package codec_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/nextpkg/vrpc/codec"
	"github.com/nextpkg/vrpc/vrpcpb"
)

// fullRequest is a request with every field set, as a client sends it.
func fullRequest() *vrpcpb.Request {
	return &vrpcpb.Request{
		Id:       "c1-0a1b2c3d4e5f-1",
		ClientId: "c1",
		ReplyTo:  "vrpc.responses.c1",
		Target:   "demo",
		Method:   "/demo.Demo/Ping",
		Payload:  []byte{0x0a, 0x02, 'h', 'i', 0x00, 0xff},
		Encoding: vrpcpb.Encoding_ENCODING_PROTO,
		Metadata: []*vrpcpb.Metadata{
			{Key: "user-id", Values: []string{"12345"}},
			{Key: "x-multi", Values: []string{"a", "b"}},
			{Key: "x-trace-bin", Values: []string{"AAEC/w=="}}, // base64, as MetadataToWire writes it
		},
		DeadlineUnixNano: 1_800_000_000_000_000_000,
		SentUnixNano:     1_799_999_999_000_000_000,
	}
}

// fullResponse is a failed call's response with every field set.
func fullResponse(t *testing.T) *vrpcpb.Response {
	t.Helper()
	detail, err := anypb.New(&vrpcpb.Metadata{Key: "detail", Values: []string{"d"}})
	if err != nil {
		t.Fatal(err)
	}
	st := status.New(codes.FailedPrecondition, "héllo, 世界: 100%").Proto()
	st.Details = append(st.Details, detail)
	return &vrpcpb.Response{
		Id:               "c1-0a1b2c3d4e5f-1",
		Status:           st,
		Header:           []*vrpcpb.Metadata{{Key: "x-header", Values: []string{"h1", "h2"}}},
		Trailer:          []*vrpcpb.Metadata{{Key: "x-trailer-bin", Values: []string{"AAE="}}},
		ReceivedUnixNano: 1_799_999_999_500_000_000,
		TargetNanos:      1234,
	}
}

func TestRequestRoundTrip(t *testing.T) {
	t.Parallel()
	for name, req := range map[string]*vrpcpb.Request{
		"full": fullRequest(),
		"minimal": {
			Id: "id", ReplyTo: "vrpc.responses.c", Target: "demo", Method: "Ping",
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b, err := codec.EncodeRequest(req)
			if err != nil {
				t.Fatal(err)
			}
			if req.Version != codec.Version {
				t.Fatalf("EncodeRequest left version %d, want %d", req.Version, codec.Version)
			}
			got, err := codec.DecodeRequest(b)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got, req) {
				t.Fatalf("round trip changed the request:\n got %v\nwant %v", got, req)
			}
		})
	}
}

func TestResponseRoundTrip(t *testing.T) {
	t.Parallel()
	for name, resp := range map[string]*vrpcpb.Response{
		"failed call": fullResponse(t),
		"ok call":     {Id: "id", Payload: []byte("reply bytes"), TargetNanos: 1},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b, err := codec.EncodeResponse(resp)
			if err != nil {
				t.Fatal(err)
			}
			got, err := codec.DecodeResponse(b)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got, resp) {
				t.Fatalf("round trip changed the response:\n got %v\nwant %v", got, resp)
			}
			// The caller gets the target's status back, details included.
			if resp.Status != nil {
				st := status.FromProto(got.Status)
				if st.Code() != codes.FailedPrecondition || st.Message() != resp.Status.Message || len(st.Details()) != 1 {
					t.Fatalf("status changed: %v", st)
				}
			}
		})
	}
}

// encodeRaw marshals m without EncodeRequest's version stamping, as a
// foreign or newer client would.
func encodeRaw(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeRequestRejects(t *testing.T) {
	t.Parallel()
	with := func(f func(r *vrpcpb.Request)) *vrpcpb.Request {
		r := fullRequest()
		r.Version = codec.Version
		f(r)
		return r
	}
	tests := []struct {
		name string
		in   []byte
		want error
		// what the error must mention, so an operator reading the
		// dead-letter reason knows what is wrong.
		mention string
		// whether the partly decoded request is returned, so a server can
		// still answer the caller.
		partial bool
	}{
		{name: "garbage", in: []byte("\xff\xff\xff\xff not protobuf"), want: codec.ErrMalformed, mention: "request"},
		{name: "truncated", in: encodeRaw(t, with(func(*vrpcpb.Request) {}))[:20], want: codec.ErrMalformed, mention: "request"},
		{name: "empty", in: nil, want: codec.ErrUnsupportedVersion, mention: "version 0", partial: true},
		{name: "version 0", in: encodeRaw(t, with(func(r *vrpcpb.Request) { r.Version = 0 })), want: codec.ErrUnsupportedVersion, mention: "version 0", partial: true},
		{name: "version 2", in: encodeRaw(t, with(func(r *vrpcpb.Request) { r.Version = 2 })), want: codec.ErrUnsupportedVersion, mention: "version 2", partial: true},
		{name: "no id", in: encodeRaw(t, with(func(r *vrpcpb.Request) { r.Id = "" })), want: codec.ErrMalformed, mention: "no id", partial: true},
		{name: "no reply_to", in: encodeRaw(t, with(func(r *vrpcpb.Request) { r.ReplyTo = "" })), want: codec.ErrMalformed, mention: "no reply address", partial: true},
		{name: "no target", in: encodeRaw(t, with(func(r *vrpcpb.Request) { r.Target = "" })), want: codec.ErrMalformed, mention: "no target", partial: true},
		{name: "no method", in: encodeRaw(t, with(func(r *vrpcpb.Request) { r.Method = "" })), want: codec.ErrMalformed, mention: "no method", partial: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, err := codec.DecodeRequest(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got error %v, want one wrapping %v", err, tt.want)
			}
			other := codec.ErrMalformed
			if tt.want == codec.ErrMalformed {
				other = codec.ErrUnsupportedVersion
			}
			if errors.Is(err, other) {
				t.Fatalf("error %v also wraps %v", err, other)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Fatalf("error %q does not mention %q", err, tt.mention)
			}
			if tt.partial != (req != nil) {
				t.Fatalf("partial request returned: %v, want %v", req != nil, tt.partial)
			}
		})
	}
	// A partly valid request still yields its reply address: what a server
	// needs to answer the caller with INVALID_ARGUMENT.
	req, err := codec.DecodeRequest(encodeRaw(t, with(func(r *vrpcpb.Request) { r.Target = "" })))
	if err == nil || req.Id != fullRequest().Id || req.ReplyTo != fullRequest().ReplyTo {
		t.Fatalf("got %v, %v; want the id and reply address with the error", req, err)
	}
}

func TestDecodeResponseRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"garbage", []byte("\xff\xff\xff\xff not protobuf"), codec.ErrMalformed},
		{"version 0", encodeRaw(t, &vrpcpb.Response{Id: "id"}), codec.ErrUnsupportedVersion},
		{"version 2", encodeRaw(t, &vrpcpb.Response{Version: 2, Id: "id"}), codec.ErrUnsupportedVersion},
		{"no id", encodeRaw(t, &vrpcpb.Response{Version: 1}), codec.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := codec.DecodeResponse(tt.in); !errors.Is(err, tt.want) {
				t.Fatalf("got error %v, want one wrapping %v", err, tt.want)
			}
		})
	}
}

func TestRawMarshalDoesNotCopy(t *testing.T) {
	t.Parallel()
	f := codec.Frame("request bytes")
	bs, err := codec.Raw{}.Marshal(&f)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 1 {
		t.Fatalf("got %d buffers, want 1", len(bs))
	}
	got := bs[0].ReadOnlyData()
	if string(got) != "request bytes" {
		t.Fatalf("marshalled %q", got)
	}
	if &got[0] != &f[0] {
		t.Fatal("Marshal copied the frame's bytes")
	}
	// An empty frame is a valid (empty) protobuf message.
	empty := codec.Frame{}
	if bs, err := (codec.Raw{}).Marshal(&empty); err != nil || bs.Len() != 0 {
		t.Fatalf("empty frame: %v, %v", bs, err)
	}
}

func TestRawUnmarshal(t *testing.T) {
	t.Parallel()
	data := mem.BufferSlice{mem.SliceBuffer("re"), mem.SliceBuffer("ply")}
	var f codec.Frame
	if err := (codec.Raw{}).Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	if string(f) != "reply" {
		t.Fatalf("got %q", f)
	}
}

func TestRawRejectsOtherTypes(t *testing.T) {
	t.Parallel()
	for _, v := range []any{
		codec.Frame("not a pointer"),
		[]byte("bytes"),
		&[]byte{},
		&vrpcpb.Request{},
		nil,
	} {
		if _, err := (codec.Raw{}).Marshal(v); err == nil || !strings.Contains(err.Error(), "*codec.Frame") {
			t.Errorf("Marshal(%T): got %v, want an error naming *codec.Frame", v, err)
		}
		if err := (codec.Raw{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer("x")}, v); err == nil || !strings.Contains(err.Error(), "*codec.Frame") {
			t.Errorf("Unmarshal(%T): got %v, want an error naming *codec.Frame", v, err)
		}
	}
	if got := (codec.Raw{}).Name(); got != codec.RawName {
		t.Fatalf("Name() = %q, want %q", got, codec.RawName)
	}
}

func TestMetadataToWire(t *testing.T) {
	t.Parallel()
	md := metadata.MD{
		":authority":   {"demo"},
		"content-type": {"application/grpc"},
		"grpc-timeout": {"1S"},
		"user-agent":   {"grpc-go/1.85.0"},
		"te":           {"trailers"},
		"user-id":      {"12345"},
		"x-multi":      {"a", "b", "c"},
		"x-trace-bin":  {string([]byte{0, 1, 2, 0xff}), "\xfe"},
	}
	wire := codec.MetadataToWire(md)
	got := map[string][]string{}
	for _, m := range wire {
		got[m.Key] = m.Values
	}
	for _, k := range []string{":authority", "content-type", "grpc-timeout", "user-agent", "te"} {
		if _, ok := got[k]; ok {
			t.Errorf("hop-by-hop key %q went on the wire", k)
		}
	}
	for _, k := range []string{"user-id", "x-multi"} {
		if !slices.Equal(got[k], md[k]) {
			t.Errorf("%s: got %q, want %q", k, got[k], md[k])
		}
	}
	// Binary values travel base64-encoded: envelope strings must be UTF-8.
	if want := []string{"AAEC/w==", "/g=="}; !slices.Equal(got["x-trace-bin"], want) {
		t.Errorf("x-trace-bin: got %q, want %q", got["x-trace-bin"], want)
	}
	if len(got) != 3 {
		t.Errorf("got keys %v, want user-id, x-multi and x-trace-bin", got)
	}
	if codec.MetadataToWire(nil) != nil || codec.MetadataToWire(metadata.MD{}) != nil {
		t.Error("empty metadata should encode as nothing")
	}
}

func TestMetadataFromWire(t *testing.T) {
	t.Parallel()
	wire := []*vrpcpb.Metadata{
		{Key: ":authority", Values: []string{"demo"}},
		{Key: "Content-Type", Values: []string{"application/grpc"}},
		{Key: "grpc-timeout", Values: []string{"1S"}},
		{Key: "user-agent", Values: []string{"grpc-go"}},
		{Key: "X-Multi", Values: []string{"a"}},
		{Key: "x-multi", Values: []string{"b", "c"}},
		{Key: "x-trace-bin", Values: []string{"AP8=", "AP8", "not base64!"}},
	}
	md := codec.MetadataFromWire(wire)
	want := metadata.MD{
		"x-multi": {"a", "b", "c"},
		// padded or unpadded base64; anything else is kept as it came
		"x-trace-bin": {"\x00\xff", "\x00\xff", "not base64!"},
	}
	if len(md) != len(want) {
		t.Fatalf("got %v, want %v", md, want)
	}
	for k, v := range want {
		if !slices.Equal(md[k], v) {
			t.Errorf("%s: got %q, want %q", k, md[k], v)
		}
	}
	if codec.MetadataFromWire(nil) != nil {
		t.Error("no metadata should decode as nil")
	}
}

// TestMetadataRoundTrip: what a caller sets is what the target sees, through
// the whole envelope, binary values included.
func TestMetadataRoundTrip(t *testing.T) {
	t.Parallel()
	md := metadata.Pairs(
		"user-id", "1",
		"x-multi", "a", "x-multi", "b",
		"x-trace-bin", string([]byte{0, 1, 0xff, 0xfe, 0x80}),
		"x-empty-bin", "",
		"user-agent", "x",
	)
	req := fullRequest()
	req.Metadata = codec.MetadataToWire(md)
	b, err := codec.EncodeRequest(req)
	if err != nil {
		t.Fatalf("encode request with binary metadata: %v", err)
	}
	dec, err := codec.DecodeRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	got := codec.MetadataFromWire(dec.Metadata)
	delete(md, "user-agent")
	if len(got) != len(md) {
		t.Fatalf("got %v, want %v", got, md)
	}
	for k, v := range md {
		if !slices.Equal(got[k], v) {
			t.Errorf("%s: got %q, want %q", k, got[k], v)
		}
	}

	// The same for a reply's header and trailer.
	resp := &vrpcpb.Response{Id: "id", Header: codec.MetadataToWire(md), Trailer: codec.MetadataToWire(md)}
	b, err = codec.EncodeResponse(resp)
	if err != nil {
		t.Fatalf("encode response with binary metadata: %v", err)
	}
	decResp, err := codec.DecodeResponse(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range []metadata.MD{codec.MetadataFromWire(decResp.Header), codec.MetadataFromWire(decResp.Trailer)} {
		for k, v := range md {
			if !slices.Equal(got[k], v) {
				t.Errorf("reply %s: got %q, want %q", k, got[k], v)
			}
		}
	}
}
