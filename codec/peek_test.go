package codec_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/nextpkg/vrpc/codec"
	"github.com/nextpkg/vrpc/vrpcpb"
)

func TestPeekRequest(t *testing.T) {
	req := &vrpcpb.Request{Id: "r1", ClientId: "c1", ReplyTo: "vrpc.responses.c1", Target: "demo", Method: "/demo.Demo/Ping",
		Payload: bytes.Repeat([]byte{7}, 1<<20), Metadata: []*vrpcpb.Metadata{{Key: "k", Values: []string{"v"}}},
		TraceContext: map[string]string{"traceparent": "x"}}
	b, err := codec.EncodeRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	h, err := codec.PeekRequest(b, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := codec.RequestHeader{Id: "r1", ClientId: "c1", ReplyTo: "vrpc.responses.c1", Target: "demo", Method: "/demo.Demo/Ping"}
	if h != want {
		t.Errorf("got %+v, want %+v", h, want)
	}

	// A field over max is left out; the others are read.
	req.ClientId = strings.Repeat("c", 1000)
	if b, err = codec.EncodeRequest(req); err != nil {
		t.Fatal(err)
	}
	h, err = codec.PeekRequest(b, 256)
	if err != nil || h.ClientId != "" || h.Id != "r1" || h.ReplyTo != "vrpc.responses.c1" {
		t.Errorf("with a 1000-byte client id: %+v, %v", h, err)
	}

	for _, bad := range [][]byte{{0xff, 0xff, 0xff}, b[:len(b)/2]} {
		if _, err := codec.PeekRequest(bad, 0); !errors.Is(err, codec.ErrMalformed) {
			t.Errorf("%x...: got %v, want ErrMalformed", bad[:3], err)
		}
	}
}

func FuzzPeekRequest(f *testing.F) {
	b, _ := codec.EncodeRequest(&vrpcpb.Request{Id: "r1", ReplyTo: "x", Target: "t", Method: "/a/b", Payload: []byte("p")})
	f.Add(b, 0)
	f.Fuzz(func(t *testing.T, b []byte, max int) {
		h, err := codec.PeekRequest(b, max)
		if err != nil {
			return
		}
		// What it reads agrees with a full decode.
		req, derr := codec.DecodeRequest(b)
		if req != nil && derr == nil && max <= 0 && (h.Id != req.Id || h.ReplyTo != req.ReplyTo || h.Target != req.Target) {
			t.Errorf("peek %+v, decode %+v", h, req)
		}
	})
}

func TestMeasureRequest(t *testing.T) {
	req := &vrpcpb.Request{Id: "r1", ClientId: "client", ReplyTo: "vrpc.responses.c1", Target: "demo", Method: "/demo.Demo/Ping",
		Payload:      bytes.Repeat([]byte{7}, 1000),
		Metadata:     []*vrpcpb.Metadata{{Key: "k", Values: []string{"v1", "v2"}}, {Key: "big", Values: []string{strings.Repeat("m", 5000)}}},
		TraceContext: map[string]string{"traceparent": "00-abc"}}
	b, err := codec.EncodeRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	z, err := codec.MeasureRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	if z.Id != 2 || z.ClientId != 6 || z.ReplyTo != len(req.ReplyTo) || z.Target != 4 || z.Method != len(req.Method) || z.Payload != 1000 {
		t.Errorf("sizes %+v", z)
	}
	if z.Metadata < 5000+len("traceparent00-abc") || z.Metadata > 5100 {
		t.Errorf("metadata %d bytes, want its encoded size (about 5040)", z.Metadata)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = codec.MeasureRequest(b) }); n != 0 {
		t.Errorf("MeasureRequest allocates %v times", n)
	}
	if _, err := codec.MeasureRequest([]byte{0xff, 0xff, 0xff}); !errors.Is(err, codec.ErrMalformed) {
		t.Errorf("garbage: got %v, want ErrMalformed", err)
	}
}
