package vgateway_test

import (
	"context"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/nextpkg/vrpc/vclient"
)

// TestStreamsWithoutReflection calls the streaming methods of a target
// without server reflection, which neither the gateway nor the loopback
// endpoint of a vrpc:/// conn can tell from unary ones. vRPC carries one
// request and one reply: a call that sends a second message, or to which
// the target answers with a second message, must end with UNIMPLEMENTED,
// never OK with the answer to part of it; a stream of exactly one message
// each way is carried whole.
func TestStreamsWithoutReflection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	loopback, err := grpc.NewClient("vrpc:///plain", grpc.WithResolvers(e.client.ResolverBuilder()),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = loopback.Close() })

	for _, via := range []struct {
		name string
		conn grpc.ClientConnInterface
	}{{"gateway", e.conn}, {"loopback", loopback}} {
		t.Run(via.name, func(t *testing.T) { // in turn: they count the target's calls
			ctx := metadata.AppendToOutgoingContext(testContext(t), vclient.TargetHeader, "plain")
			tc := testgrpc.NewTestServiceClient(via.conn)
			unimplemented := func(what string, err error) {
				t.Helper()
				if status.Code(err) != codes.Unimplemented {
					t.Errorf("%s: got %v, want UNIMPLEMENTED", what, err)
				}
			}
			payload := func(n int) *testgrpc.Payload { return &testgrpc.Payload{Body: make([]byte, n)} }

			t.Run("client stream of four", func(t *testing.T) {
				before := e.plain.calls.Load()
				in, err := tc.StreamingInputCall(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for i := 1; i <= 4; i++ {
					if err := in.Send(&testgrpc.StreamingInputCallRequest{Payload: payload(i)}); err != nil && err != io.EOF {
						t.Fatalf("Send %d: %v", i, err)
					}
				}
				resp, err := in.CloseAndRecv()
				if err == nil {
					t.Fatalf("a client stream of 4 messages returned OK with aggregated size %d (the full answer is 10)", resp.GetAggregatedPayloadSize())
				}
				unimplemented("client stream of four", err)
				if got := e.plain.calls.Load() - before; got != 0 {
					t.Errorf("the target ran %d calls with part of the input", got)
				}
			})

			t.Run("client stream of one", func(t *testing.T) {
				in, err := tc.StreamingInputCall(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if err := in.Send(&testgrpc.StreamingInputCallRequest{Payload: payload(7)}); err != nil {
					t.Fatal(err)
				}
				resp, err := in.CloseAndRecv()
				if err != nil || resp.GetAggregatedPayloadSize() != 7 {
					t.Fatalf("client stream of one message = %v, %v; want aggregated size 7", resp, err)
				}
			})

			serverStream := func(t *testing.T, sizes ...int32) (got int, err error) {
				t.Helper()
				req := &testgrpc.StreamingOutputCallRequest{}
				for _, n := range sizes {
					req.ResponseParameters = append(req.ResponseParameters, &testgrpc.ResponseParameters{Size: n})
				}
				out, err := tc.StreamingOutputCall(ctx, req)
				if err != nil {
					return 0, err
				}
				for {
					if _, err := out.Recv(); err != nil {
						if err == io.EOF {
							err = nil
						}
						return got, err
					}
					got++
				}
			}

			t.Run("server stream of three", func(t *testing.T) {
				got, err := serverStream(t, 1, 2, 3)
				if err == nil {
					t.Fatalf("a server stream of 3 messages ended OK after %d", got)
				}
				unimplemented("server stream of three", err)
				if got != 0 {
					t.Errorf("the caller got %d of the 3 messages before the error", got)
				}
			})

			t.Run("server stream of one", func(t *testing.T) {
				if got, err := serverStream(t, 5); err != nil || got != 1 {
					t.Fatalf("server stream of one message: %d messages, %v", got, err)
				}
			})

			t.Run("bidi stream of two", func(t *testing.T) {
				before := e.plain.calls.Load()
				bidi, err := tc.FullDuplexCall(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for range 2 {
					req := &testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{Size: 1}}}
					if err := bidi.Send(req); err != nil && err != io.EOF {
						t.Fatal(err)
					}
				}
				_ = bidi.CloseSend()
				resp, err := bidi.Recv()
				if err == nil {
					t.Fatalf("a bidi stream of 2 messages answered %v", resp)
				}
				unimplemented("bidi stream of two", err)
				if got := e.plain.calls.Load() - before; got != 0 {
					t.Errorf("the target ran %d calls with part of the input", got)
				}
			})

			t.Run("bidi ping-pong", func(t *testing.T) {
				// One message, then a wait for its answer before the next:
				// what cannot be carried must end, not answer.
				ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				bidi, err := tc.FullDuplexCall(ctx)
				if err != nil {
					t.Fatal(err)
				}
				req := &testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{Size: 1}}}
				if err := bidi.Send(req); err != nil {
					t.Fatal(err)
				}
				if resp, err := bidi.Recv(); err == nil {
					t.Fatalf("a bidi stream still open got an answer %v", resp)
				}
			})
		})
	}
}
