package vgateway_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/vclient"
	"github.com/nextpkg/vrpc/vgateway"
)

// TestCalls checks, through one gateway, what a caller relies on when it
// calls a target directly.
func TestCalls(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	t.Run("ok", func(t *testing.T) {
		t.Parallel()
		resp, err := ping(testContext(t), e.conn, "hello")
		if err != nil || resp.Message != "hello" || resp.ServedBy != "t1" {
			t.Fatalf("Ping = %v, %v; want hello from t1", resp, err)
		}
	})

	t.Run("deadline travels", func(t *testing.T) {
		t.Parallel()
		deadline := time.Now().Add(10 * time.Second)
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		resp, err := ping(ctx, e.conn, "deadline")
		if err != nil {
			t.Fatal(err)
		}
		ns, err := time.ParseDuration(resp.Message)
		if err != nil {
			t.Fatalf("target's deadline %q: %v", resp.Message, err)
		}
		// Without the caller's deadline the target would get the
		// client's 30 s default.
		if got := time.Unix(0, int64(ns)); got.Sub(deadline).Abs() > 2*time.Second {
			t.Fatalf("target's deadline %v, caller's %v", got, deadline)
		}
	})

	t.Run("deadline exceeded", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := ping(ctx, e.conn, "block")
		if status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("blocked call: got %v, want DEADLINE_EXCEEDED", err)
		}
	})

	t.Run("metadata both ways", func(t *testing.T) {
		t.Parallel()
		bin := string([]byte{0, 1, 2, 0xff, 'x'})
		ctx := metadata.AppendToOutgoingContext(testContext(t), "user-id", "12345", "user-id", "678", "x-bin", bin)
		var header, trailer metadata.MD
		resp, err := ping(ctx, e.conn, "metadata", grpc.Header(&header), grpc.Trailer(&trailer))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Message != "12345,678" {
			t.Errorf("target saw user-id %q, want 12345,678", resp.Message)
		}
		if got := header.Get("x-header"); fmt.Sprint(got) != "[h1 h2]" {
			t.Errorf("header x-header %q, want [h1 h2]", got)
		}
		if got := header.Get("x-echo-bin"); len(got) != 1 || got[0] != bin {
			t.Errorf("header x-echo-bin %q, want %q", got, bin)
		}
		if got := trailer.Get("x-trailer"); fmt.Sprint(got) != "[t1]" {
			t.Errorf("trailer x-trailer %q, want [t1]", got)
		}
		if got := trailer.Get("x-trailer-bin"); len(got) != 1 || got[0] != string([]byte{0, 1, 2, 0xff}) {
			t.Errorf("trailer x-trailer-bin %q", got)
		}
	})

	t.Run("status with details", func(t *testing.T) {
		t.Parallel()
		var header metadata.MD
		ctx := metadata.AppendToOutgoingContext(testContext(t), "x-echo", "e1")
		_, err := ping(ctx, e.conn, "error", grpc.Header(&header))
		st := status.Convert(err)
		if st.Code() != codes.FailedPrecondition || st.Message() != statusMessage {
			t.Fatalf("got %v %q, want FAILED_PRECONDITION %q", st.Code(), st.Message(), statusMessage)
		}
		details := st.Details()
		if len(details) != 1 || !proto.Equal(details[0].(proto.Message), &demo.Response{Message: "detail", ServedBy: "t1"}) {
			t.Fatalf("details %v", details)
		}
		if got := header.Get("x-echo"); fmt.Sprint(got) != "[e1]" {
			t.Errorf("header of a failed call: x-echo %q, want [e1]", got)
		}
	})

	t.Run("4 MiB message", func(t *testing.T) {
		t.Parallel()
		// 1 tag byte + 4 length bytes + the string: 4 MiB exactly.
		msg := strings.Repeat("m", vgateway.DefaultMaxMessageBytes-5)
		if n := proto.Size(&demo.Request{Message: msg}); n != vgateway.DefaultMaxMessageBytes {
			t.Fatalf("request of %d bytes", n)
		}
		resp, err := ping(testContext(t), e.conn, msg)
		if err != nil || resp.Message != msg {
			t.Fatalf("4 MiB Ping: %d bytes back, %v", len(resp.GetMessage()), err)
		}
	})

	t.Run("over max", func(t *testing.T) {
		t.Parallel()
		before := e.t1.calls.Load()
		msg := strings.Repeat("o", vgateway.DefaultMaxMessageBytes-4)
		_, err := ping(testContext(t), e.conn, msg)
		if status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("request over 4 MiB: got %v, want RESOURCE_EXHAUSTED", err)
		}
		if _, err := ping(testContext(t), e.conn, "big-reply"); status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("reply over 4 MiB: got %v, want RESOURCE_EXHAUSTED", err)
		}
		if e.t1.executed(msg) != 0 {
			t.Errorf("the request over max reached the target (calls %d before)", before)
		}
	})

	t.Run("empty messages", func(t *testing.T) {
		t.Parallel()
		if _, err := testgrpc.NewTestServiceClient(e.conn).EmptyCall(testContext(t), &testgrpc.Empty{}); err != nil {
			t.Fatalf("EmptyCall: %v", err)
		}
		resp, err := ping(testContext(t), e.conn, "")
		if err != nil || resp.ServedBy != "t1" || resp.Message != "" {
			t.Fatalf("Ping with an empty request = %v, %v", resp, err)
		}
	})

	t.Run("500 concurrent calls on one conn", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		var wg sync.WaitGroup
		errs := make(chan error, 500)
		for i := range 500 {
			wg.Go(func() {
				msg := "c" + strconv.Itoa(i)
				resp, err := ping(ctx, e.conn, msg)
				if err == nil && resp.Message != msg {
					err = fmt.Errorf("call %s got reply %q", msg, resp.Message)
				}
				if err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		n := 0
		for err := range errs {
			if n++; n <= 3 {
				t.Error(err)
			}
		}
		if n > 0 {
			t.Fatalf("%d of 500 calls failed", n)
		}
	})

	t.Run("unroutable", func(t *testing.T) {
		t.Parallel()
		err := e.conn.Invoke(testContext(t), "/nowhere.Thing/Do", &emptypb.Empty{}, &emptypb.Empty{})
		if status.Code(err) != codes.Unimplemented || !strings.Contains(err.Error(), "nowhere.Thing") {
			t.Fatalf("got %v, want UNIMPLEMENTED naming nowhere.Thing", err)
		}
	})

	t.Run("vrpc-target header", func(t *testing.T) {
		t.Parallel()
		ctx := metadata.AppendToOutgoingContext(testContext(t), vclient.TargetHeader, "t2")
		resp, err := ping(ctx, e.conn, "which")
		if err != nil || resp.ServedBy != "t2" {
			t.Fatalf("Ping with %s: t2 = %v, %v; want served by t2", vclient.TargetHeader, resp, err)
		}
		// A service the table does not route becomes reachable.
		ctx = metadata.AppendToOutgoingContext(testContext(t), vclient.TargetHeader, "t1")
		err = e.conn.Invoke(ctx, "/nowhere.Thing/Do", &emptypb.Empty{}, &emptypb.Empty{})
		if status.Code(err) != codes.Unimplemented || !strings.Contains(err.Error(), "nowhere.Thing") {
			t.Fatalf("unknown service at t1: got %v, want the target's UNIMPLEMENTED", err)
		}
	})

	t.Run("target without reflection", func(t *testing.T) {
		t.Parallel()
		ctx := metadata.AppendToOutgoingContext(testContext(t), vclient.TargetHeader, "plain")
		for range 3 {
			resp, err := ping(ctx, e.conn, "unary")
			if err != nil || resp.ServedBy != "plain" {
				t.Fatalf("Ping at a target without reflection = %v, %v", resp, err)
			}
		}
	})

	t.Run("streaming refused", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		tc := testgrpc.NewTestServiceClient(e.conn)
		before := e.t1.calls.Load()
		check := func(what string, err error) {
			t.Helper()
			if status.Code(err) != codes.Unimplemented || !strings.Contains(err.Error(), "streaming is not supported yet") {
				t.Errorf("%s: got %v, want UNIMPLEMENTED saying streaming is not supported yet", what, err)
			}
		}
		out, err := tc.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{})
		if err == nil {
			_, err = out.Recv()
		}
		check("server streaming", err)
		bidi, err := tc.FullDuplexCall(ctx)
		if err == nil {
			_, err = bidi.Recv()
		}
		check("bidi streaming", err)
		// The unary methods of the same service still go through.
		resp, err := tc.UnaryCall(ctx, &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte("u")}})
		if err != nil || string(resp.GetPayload().GetBody()) != "u" {
			t.Fatalf("UnaryCall = %v, %v", resp, err)
		}
		if got := e.t1.calls.Load() - before; got < 1 {
			t.Errorf("target calls %d", got)
		}
	})

	t.Run("health", func(t *testing.T) {
		t.Parallel()
		resp, err := healthpb.NewHealthClient(e.conn).Check(testContext(t), &healthpb.HealthCheckRequest{})
		if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health Check = %v, %v; want SERVING", resp, err)
		}
	})
}

// TestCancelAndStop checks that a caller's cancel frees the call at the
// gateway, and that Stop lets a call in flight finish.
func TestCancelAndStop(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testContext(t)
	if _, err := ping(ctx, e.conn, "warm"); err != nil {
		t.Fatal(err)
	}

	cctx, cancel := context.WithCancel(ctx)
	cerr := make(chan error, 1)
	go func() {
		_, err := ping(cctx, e.conn, "block-cancel")
		cerr <- err
	}()
	eventually(t, "the call waits at the gateway", func() bool { return e.client.Pending() == 1 })
	cancel()
	if err := <-cerr; status.Code(err) != codes.Canceled {
		t.Fatalf("cancelled call: got %v, want CANCELED", err)
	}
	eventually(t, "the gateway frees the cancelled call", func() bool { return e.client.Pending() == 0 })

	errc := make(chan error, 1)
	go func() {
		_, err := ping(ctx, e.conn, "block")
		errc <- err
	}()
	eventually(t, "the target runs the call", func() bool { return e.t1.executed("block") > 0 })
	stopped := make(chan struct{})
	go func() { e.stop(t); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("Stop returned with a call in flight")
	case <-time.After(100 * time.Millisecond):
	}
	e.t1.unblock()
	if err := <-errc; err != nil {
		t.Fatalf("call in flight during Stop: %v", err)
	}
	<-stopped
	if _, err := ping(ctx, e.conn, "after"); status.Code(err) != codes.Unavailable {
		t.Fatalf("call after Stop: %v, want UNAVAILABLE", err)
	}
	if err := e.gw.Serve(nil); err != vgateway.ErrStopped {
		t.Fatalf("Serve after Stop = %v, want ErrStopped", err)
	}
}

// TestNew checks New's refusals.
func TestNew(t *testing.T) {
	t.Parallel()
	if _, err := vgateway.New(nil, vgateway.Config{}); err == nil {
		t.Error("New(nil) succeeded")
	}
}
