package vrpc_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zeromicro/go-zero/zrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/vclient"
)

func TestCallStyles(t *testing.T) {
	tg, _, c, _ := setup(t)
	ctx := testContext(t)

	t.Run("Call full and short method", func(t *testing.T) {
		for _, method := range []string{"/demo.Demo/Ping", "demo.Demo/Ping", "Ping"} {
			resp, err := c.Call(ctx, "demo", method, mustMarshal(t, &demo.Request{Message: "hi " + method}), map[string]string{"user-id": "12345"})
			if err != nil {
				t.Fatalf("%s: %v", method, err)
			}
			var out demo.Response
			if err := protoUnmarshal(resp.Payload, &out); err != nil {
				t.Fatal(err)
			}
			if out.Message != "hi "+method || out.ServedBy != "t1" {
				t.Fatalf("%s: got %+v", method, &out)
			}
		}
	})
	t.Run("Call unknown short method", func(t *testing.T) {
		_, err := c.Call(ctx, "demo", "Pong", nil, nil)
		if status.Code(err) != codes.Unimplemented || !strings.Contains(err.Error(), "/demo.Demo/Ping") {
			t.Fatalf("want UNIMPLEMENTED listing the methods, got %v", err)
		}
	})
	t.Run("Call JSON payload", func(t *testing.T) {
		for _, method := range []string{"Ping", "demo.Demo/Ping"} {
			resp, err := c.Call(ctx, "demo", method, []byte(`{"message": "Hello vRPC"}`), nil)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := string(resp.Payload), `{"message":"Hello vRPC","servedBy":"t1"}`; got != want {
				t.Fatalf("%s: reply %s, want %s", method, got, want)
			}
		}
		resp, err := c.Call(ctx, "demo", "Ping", []byte(`{"message": "x"}`), nil, vclient.WithJSONOptions(true, false))
		if err != nil || string(resp.Payload) != `{"message":"x","served_by":"t1"}` {
			t.Fatalf("proto names: %s, %v", resp.GetPayload(), err)
		}
		before := tg.calls.Load()
		_, err = c.Call(ctx, "demo", "Ping", []byte(`{"mesage": "typo"}`), nil)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "mesage") {
			t.Fatalf("bad JSON: want INVALID_ARGUMENT naming the field, got %v", err)
		}
		if tg.calls.Load() != before {
			t.Fatal("bad JSON reached the target")
		}
	})
	t.Run("interceptor on grpc-go conn to an unreachable address", func(t *testing.T) {
		conn, err := grpc.NewClient("passthrough:///127.0.0.1:1",
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithUnaryInterceptor(c.UnaryClientInterceptor(vclient.WithTarget("demo"))))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		resp, err := ping(ctx, conn, "interceptor")
		if err != nil || resp.Message != "interceptor" {
			t.Fatalf("got %v, %v", resp, err)
		}
	})
	t.Run("Conn without grpc.ClientConn", func(t *testing.T) {
		resp, err := ping(ctx, vclient.NewConn(c, "demo"), "conn")
		if err != nil || resp.Message != "conn" {
			t.Fatalf("got %v, %v", resp, err)
		}
		_, err = vclient.NewConn(c, "demo").NewStream(ctx, &grpc.StreamDesc{}, "/demo.Demo/Stream")
		if status.Code(err) != codes.Unimplemented {
			t.Fatalf("streaming: want UNIMPLEMENTED, got %v", err)
		}
	})
	t.Run("vrpc resolver without interceptor", func(t *testing.T) {
		conn, err := grpc.NewClient("vrpc:///demo",
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithResolvers(c.ResolverBuilder()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var header metadata.MD
		resp, err := ping(ctx, conn, "loopback", grpc.Header(&header))
		if err != nil || resp.Message != "loopback" {
			t.Fatalf("got %v, %v", resp, err)
		}
		_, err = ping(ctx, conn, "error")
		if st := status.Convert(err); st.Code() != codes.FailedPrecondition || st.Message() != statusMessage || len(st.Details()) != 1 {
			t.Fatalf("status through the loopback: got %v", st)
		}
	})
	t.Run("services table", func(t *testing.T) {
		c2, err := vclient.New(vclient.Config{ClientID: "c-services", RpcBus: c.Config().RpcBus, Services: map[string]string{"demo.": "demo"}})
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		conn, err := grpc.NewClient("passthrough:///unreachable",
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithUnaryInterceptor(c2.UnaryClientInterceptor()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if resp, err := ping(ctx, conn, "table"); err != nil || resp.Message != "table" {
			t.Fatalf("got %v, %v", resp, err)
		}
	})
	t.Run("no target", func(t *testing.T) {
		conn, err := grpc.NewClient("passthrough:///unreachable",
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithUnaryInterceptor(c.UnaryClientInterceptor()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := ping(ctx, conn, "x"); status.Code(err) != codes.Unimplemented {
			t.Fatalf("want UNIMPLEMENTED, got %v", err)
		}
	})
}

// TestSeedUsages runs the seed's client usages through the process-wide
// client: a go-zero zrpc client (NonBlock false, as a struct literal has
// it) whose target is unreachable from the caller, and the direct Call.
func TestSeedUsages(t *testing.T) {
	bus := startKafka(t)
	_, addr := startTarget(t, "seed")
	startServer(t, serverConfig(bus, map[string]vrpc.Target{"demo": {Endpoint: addr, Timeout: "30s"}}))

	vrpc.MustInitClient(vrpc.WithConfig(vrpc.ClientConfig{ClientID: "demo-client", RpcBus: bus}))
	defer vrpc.Close()
	ctx := testContext(t)

	v := zrpc.WithUnaryClientInterceptor(vrpc.Interceptor())
	c := zrpc.MustNewClient(zrpc.RpcClientConf{Target: "vrpc:///demo", Timeout: 10000}, v)
	defer c.Conn().Close()
	resp, err := demo.NewDemoClient(c.Conn()).Ping(ctx, &demo.Request{Message: "zrpc"})
	if err != nil || resp.Message != "zrpc" || resp.ServedBy != "seed" {
		t.Fatalf("zrpc: got %v, %v", resp, err)
	}

	// A zrpc conf pointing at the real, unreachable address works with
	// NonBlock and vrpc.WithTarget.
	c2 := zrpc.MustNewClient(zrpc.RpcClientConf{Endpoints: []string{"127.0.0.1:1"}, NonBlock: true, Timeout: 10000},
		zrpc.WithUnaryClientInterceptor(vrpc.Interceptor(vrpc.WithTarget("demo"))))
	defer c2.Conn().Close()
	if resp, err := demo.NewDemoClient(c2.Conn()).Ping(ctx, &demo.Request{Message: "zrpc2"}); err != nil || resp.Message != "zrpc2" {
		t.Fatalf("zrpc with endpoints: got %v, %v", resp, err)
	}

	payload := mustMarshal(t, &demo.Request{Message: "direct"})
	r, err := vrpc.GetClient().Call(ctx, "demo", "Ping", payload, map[string]string{"user-id": "12345"})
	if err != nil {
		t.Fatal(err)
	}
	var out demo.Response
	if err := protoUnmarshal(r.Payload, &out); err != nil || out.Message != "direct" {
		t.Fatalf("direct: got %v, %v", &out, err)
	}
	if resp, err := demo.NewDemoClient(vrpc.NewConn("demo")).Ping(ctx, &demo.Request{Message: "conn"}); err != nil || resp.Message != "conn" {
		t.Fatalf("vrpc.NewConn: got %v, %v", resp, err)
	}
}

func TestStatusReachesCaller(t *testing.T) {
	_, _, c, _ := setup(t)
	ctx := testContext(t)
	_, err := ping(ctx, vclient.NewConn(c, "demo"), "error")
	st := status.Convert(err)
	if st.Code() != codes.FailedPrecondition || st.Message() != statusMessage {
		t.Fatalf("got code %v message %q", st.Code(), st.Message())
	}
	details := st.Details()
	if len(details) != 1 {
		t.Fatalf("got %d details, want 1", len(details))
	}
	if d, ok := details[0].(*demo.Response); !ok || d.Message != "detail" {
		t.Fatalf("detail: got %#v", details[0])
	}
}

func TestUnknownTarget(t *testing.T) {
	_, _, c, _ := setup(t)
	ctx := testContext(t)
	_, err := ping(ctx, vclient.NewConn(c, "nosuch"), "x")
	if status.Code(err) != codes.Unimplemented || !strings.Contains(err.Error(), "nosuch") {
		t.Fatalf("want UNIMPLEMENTED naming the target, got %v", err)
	}
}

func TestUnreachableTarget(t *testing.T) {
	bus := startKafka(t)
	startServer(t, serverConfig(bus, map[string]vrpc.Target{"down": {Endpoint: "127.0.0.1:1"}}))
	c := newClient(t, bus, "c1")
	// A generous deadline: an UNAVAILABLE before it shows the server did
	// not wait for the target to come up.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := ping(ctx, vclient.NewConn(c, "down"), "x")
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("want UNAVAILABLE, got %v", err)
	}
}

func TestMetadataAndHeaders(t *testing.T) {
	_, _, c, _ := setup(t)
	ctx := metadata.AppendToOutgoingContext(testContext(t), "user-id", "12345", "user-id", "67890")
	var header, trailer metadata.MD
	resp, err := ping(ctx, vclient.NewConn(c, "demo"), "metadata", grpc.Header(&header), grpc.Trailer(&trailer))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Message != "12345,67890" {
		t.Fatalf("target saw user-id %q", resp.Message)
	}
	if got := header.Get("x-header"); len(got) != 2 || got[0] != "h1" || got[1] != "h2" {
		t.Fatalf("header x-header = %v (all: %v)", got, header)
	}
	if got := trailer.Get("x-trailer"); len(got) != 1 || got[0] != "t1" {
		t.Fatalf("trailer x-trailer = %v (all: %v)", got, trailer)
	}
	if got := trailer.Get("x-bin"); len(got) != 1 || got[0] != string([]byte{0, 1, 2}) {
		t.Fatalf("trailer x-bin = %q", got)
	}

	// The metadata map of Call arrives too.
	r, err := c.Call(testContext(t), "demo", "Ping", mustMarshal(t, &demo.Request{Message: "metadata"}), map[string]string{"user-id": "map"})
	if err != nil {
		t.Fatal(err)
	}
	var out demo.Response
	if err := protoUnmarshal(r.Payload, &out); err != nil || out.Message != "map" {
		t.Fatalf("Call metadata: got %q, %v", out.Message, err)
	}
}

func TestDeadlineTravels(t *testing.T) {
	bus := startKafka(t)
	_, addr := startTarget(t, "t1")
	startServer(t, serverConfig(bus, map[string]vrpc.Target{
		"demo":   {Endpoint: addr, Timeout: "1h"},
		"capped": {Endpoint: addr, Timeout: "2s"},
	}))
	c := newClient(t, bus, "c1")

	deadline := time.Now().Add(time.Minute)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	resp, err := ping(ctx, vclient.NewConn(c, "demo"), "deadline")
	if err != nil {
		t.Fatal(err)
	}
	got := parseDeadline(t, resp.Message)
	// The target sees the caller's own deadline (grpc-go sends it with
	// millisecond-ish precision), not a fresh relative timeout.
	if diff := got.Sub(deadline).Abs(); diff > 100*time.Millisecond {
		t.Fatalf("target deadline %v, caller deadline %v", got, deadline)
	}

	// The target's timeout caps it.
	resp, err = ping(ctx, vclient.NewConn(c, "capped"), "deadline")
	if err != nil {
		t.Fatal(err)
	}
	if got := parseDeadline(t, resp.Message); !got.Before(deadline.Add(-30 * time.Second)) {
		t.Fatalf("capped target deadline %v should be about 2s after the call, caller's is %v", got, deadline)
	}
}

func parseDeadline(t *testing.T, s string) time.Time {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("target answered %q: %v", s, err)
	}
	return time.Unix(0, int64(d))
}

// TestDeadlineExceeded: the caller gets DEADLINE_EXCEEDED while the target
// is still busy: its deadline ends the call, not the target.
func TestDeadlineExceeded(t *testing.T) {
	tg, _, c, _ := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := ping(ctx, vclient.NewConn(c, "demo"), "block")
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("want DEADLINE_EXCEEDED, got %v", err)
	}
	select {
	case <-tg.release:
		t.Fatal("release closed")
	default:
	}
}

func TestCancelFreesPending(t *testing.T) {
	_, _, c, _ := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := ping(ctx, vclient.NewConn(c, "demo"), "block")
		errc <- err
	}()
	waitFor(t, func() bool { return c.Pending() == 1 })
	cancel()
	if err := <-errc; status.Code(err) != codes.Canceled {
		t.Fatalf("want CANCELED, got %v", err)
	}
	if n := c.Pending(); n != 0 {
		t.Fatalf("%d calls still pending after cancel", n)
	}
}

// TestExpiredRequestsAreNotExecuted queues requests while no server runs;
// those whose deadline passes in the queue never reach the target.
func TestExpiredRequestsAreNotExecuted(t *testing.T) {
	bus := startKafka(t)
	tg, addr := startTarget(t, "t1")
	cfg := serverConfig(bus, map[string]vrpc.Target{"demo": {Endpoint: addr}})
	// A first server declares the target (creates its topic) and leaves.
	first := startServerManual(t, cfg)
	first.Stop()

	c := newClient(t, bus, "c1")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := ping(ctx, vclient.NewConn(c, "demo"), "expired"); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("want DEADLINE_EXCEEDED with no server, got %v", err)
	}
	srv := startServer(t, cfg)
	// A later call is served, and by then the expired one has been read.
	if resp, err := ping(testContext(t), vclient.NewConn(c, "demo"), "later"); err != nil || resp.Message != "later" {
		t.Fatalf("got %v, %v", resp, err)
	}
	if n := tg.executed("expired"); n != 0 {
		t.Fatalf("expired request executed %d times", n)
	}
	if got := srv.Stats().Expired; got != 1 {
		t.Fatalf("server counted %d expired requests, want 1", got)
	}
}

func startServerManual(t *testing.T, cfg *vrpc.Config) interface{ Stop() } {
	t.Helper()
	return startServer(t, cfg)
}

func TestPayloadLimits(t *testing.T) {
	tg, _, c, _ := setup(t)
	ctx := testContext(t)
	big := strings.Repeat("x", 4<<20-16) // with its protobuf framing, just under 4 MiB
	resp, err := ping(ctx, vclient.NewConn(c, "demo"), big)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Message != big {
		t.Fatalf("got %d bytes back, want %d", len(resp.Message), len(big))
	}
	before := tg.calls.Load()
	_, err = ping(ctx, vclient.NewConn(c, "demo"), big+strings.Repeat("y", 64))
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("over the max: want RESOURCE_EXHAUSTED, got %v", err)
	}
	if tg.calls.Load() != before {
		t.Fatal("an oversized request reached the target")
	}
	if resp, err := ping(ctx, vclient.NewConn(c, "demo"), ""); status.Code(err) != codes.OK && resp == nil {
		// The empty message is valid protobuf (zero bytes); the target echoes it.
		t.Fatalf("empty request: %v", err)
	}
}

func TestConcurrentCalls(t *testing.T) {
	tg, _, c, _ := setup(t)
	const n = 2000
	if err := callMany(testContext(t), c, "call", n); err != nil {
		t.Fatal(err)
	}
	if got := tg.calls.Load(); got != n {
		t.Fatalf("target executed %d calls, want %d", got, n)
	}
}

// TestReplyRouting: each client gets exactly its own replies, including two
// instances that share a client id (see also TestTwoProcessesSameClientID).
func TestReplyRouting(t *testing.T) {
	_, _, _, bus := setup(t)
	ctx := testContext(t)
	clients := []*vclient.Client{newClient(t, bus, "alpha"), newClient(t, bus, "beta"), newClient(t, bus, "beta")}
	var wg sync.WaitGroup
	errs := make(chan error, len(clients))
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- callMany(ctx, c, fmt.Sprintf("client-%d", i), 100)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// TestTargetRouting: a server consumes only its own targets' requests, and
// servers with the same name share a target's load.
func TestTargetRouting(t *testing.T) {
	bus := startKafka(t)
	tgA, addrA := startTarget(t, "a")
	tgB1, addrB1 := startTarget(t, "b1")
	tgB2, addrB2 := startTarget(t, "b2")
	cfgA := serverConfig(bus, map[string]vrpc.Target{"alpha": {Endpoint: addrA}})
	cfgA.Name = "server-alpha"
	startServer(t, cfgA)
	cfgB1 := serverConfig(bus, map[string]vrpc.Target{"beta": {Endpoint: addrB1}})
	cfgB1.Name = "server-beta"
	startServer(t, cfgB1)
	cfgB2 := serverConfig(bus, map[string]vrpc.Target{"beta": {Endpoint: addrB2}})
	cfgB2.Name = "server-beta"
	startServer(t, cfgB2)

	c := newClient(t, bus, "c1")
	ctx := testContext(t)
	for i := range 20 {
		if resp, err := ping(ctx, vclient.NewConn(c, "alpha"), "a"+strconv.Itoa(i)); err != nil || resp.ServedBy != "a" {
			t.Fatalf("alpha: got %v, %v", resp, err)
		}
	}
	if tgB1.calls.Load()+tgB2.calls.Load() != 0 {
		t.Fatal("beta's servers executed alpha's requests")
	}
	// Keep calling until both beta servers have served (the group spreads
	// partitions over its members); every reply must come from one of them.
	for i := 0; tgB1.calls.Load() == 0 || tgB2.calls.Load() == 0; i++ {
		if i == 2000 {
			t.Fatalf("after %d calls: b1 served %d, b2 served %d", i, tgB1.calls.Load(), tgB2.calls.Load())
		}
		resp, err := ping(ctx, vclient.NewConn(c, "beta"), "b"+strconv.Itoa(i))
		if err != nil || (resp.ServedBy != "b1" && resp.ServedBy != "b2") {
			t.Fatalf("beta: got %v, %v", resp, err)
		}
	}
	if tgA.calls.Load() != 20 {
		t.Fatalf("alpha executed %d calls, want 20", tgA.calls.Load())
	}
}

// TestGracefulStop: a call in flight when Stop begins still gets its reply.
func TestGracefulStop(t *testing.T) {
	bus := startKafka(t)
	tg, addr := startTarget(t, "t1")
	s, err := newServer(serverConfig(bus, map[string]vrpc.Target{"demo": {Endpoint: addr}}))
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Start() }()
	<-s.Ready()
	c := newClient(t, bus, "c1")
	callErr := make(chan error, 1)
	go func() {
		resp, err := ping(testContext(t), vclient.NewConn(c, "demo"), "block")
		if err == nil && resp.Message != "block" {
			err = errors.New("wrong reply " + resp.Message)
		}
		callErr <- err
	}()
	waitFor(t, func() bool { return tg.calls.Load() == 1 })
	stopped := make(chan struct{})
	go func() { s.Stop(); close(stopped) }()
	tg.unblock()
	if err := <-callErr; err != nil {
		t.Fatalf("in-flight call during Stop: %v", err)
	}
	<-stopped
	if err := <-errc; err != nil {
		t.Fatalf("Start: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 20s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
