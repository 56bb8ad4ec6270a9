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
