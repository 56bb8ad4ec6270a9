package vserver_test

import (
	"context"
	"slices"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/nextpkg/vrpc/example/demo"
)

// TestBinaryMetadata: binary ("-bin") metadata values are arbitrary bytes,
// not text; they reach the target, and the target's binary header and
// trailer values reach the caller, unchanged.
func TestBinaryMetadata(t *testing.T) {
	t.Parallel()
	busCfg := startKafka(t)
	value := string([]byte{0x00, 0xff, 0xfe, 0x80, 'a'})
	seen := make(chan []string, 1)
	echo := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		seen <- md.Get("x-trace-bin")
		_ = grpc.SetHeader(ctx, metadata.Pairs("x-echo-bin", value))
		_ = grpc.SetTrailer(ctx, metadata.Pairs("x-echo-bin", value, "x-echo-bin", ""))
		return h(ctx, req)
	}
	startServer(t, serverConfig(busCfg, startRecordingDemo(t, "demo-1", echo)))
	c := newClient(t, busCfg, "bin-caller")

	resp, err := c.Invoke(testContext(t), "demo", "/demo.Demo/Ping",
		mustMarshal(t, &demo.Request{Message: "bin"}), metadata.Pairs("x-trace-bin", value))
	if err != nil {
		t.Fatalf("call with binary metadata: %v", err)
	}
	if got := <-seen; !slices.Equal(got, []string{value}) {
		t.Errorf("target saw x-trace-bin %q, want %q", got, value)
	}
	if got := resp.Header.Get("x-echo-bin"); !slices.Equal(got, []string{value}) {
		t.Errorf("caller got header x-echo-bin %q, want %q", got, value)
	}
	if got := resp.Trailer.Get("x-echo-bin"); !slices.Equal(got, []string{value, ""}) {
		t.Errorf("caller got trailer x-echo-bin %q, want %q", got, []string{value, ""})
	}
}

// TestTargetSeesProtobufContentType: the target gets an ordinary protobuf
// call, content type application/grpc+proto, not the subtype of the codec
// the server passes bytes through with, which targets do not know (gRPC-Go
// falls back to protobuf with a warning on every call; others may refuse).
func TestTargetSeesProtobufContentType(t *testing.T) {
	t.Parallel()
	busCfg := startKafka(t)
	seen := make(chan []string, 1)
	record := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		seen <- md.Get("content-type")
		return h(ctx, req)
	}
	startServer(t, serverConfig(busCfg, startRecordingDemo(t, "demo-1", record)))
	c := newClient(t, busCfg, "content-type-caller")
	if _, err := c.Invoke(testContext(t), "demo", "/demo.Demo/Ping", mustMarshal(t, &demo.Request{Message: "ct"}), nil); err != nil {
		t.Fatalf("call: %v", err)
	}
	if got := <-seen; !slices.Equal(got, []string{"application/grpc+proto"}) {
		t.Errorf("target saw content-type %q, want [application/grpc+proto]", got)
	}
}
