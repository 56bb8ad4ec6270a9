package vtest

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/codec"
	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vclient"
	"github.com/nextpkg/vrpc/vrpcpb"
	"github.com/nextpkg/vrpc/vserver"
	"github.com/nextpkg/vrpc/vserver/plugin"
)

// e2eCases are RunEndToEnd's subtests, in the order they run.
var e2eCases = []struct {
	name string
	run  func(t *testing.T, e *e2e)
}{
	{"Echo", testEcho},
	{"CallProtobuf", testCallProtobuf},
	{"CallJSON", testCallJSON},
	{"Status", testStatus},
	{"Metadata", testMetadata},
	{"DeadlineTravels", testDeadlineTravels},
	{"DeadlineExceeded", testDeadlineExceeded},
	{"Canceled", testCanceled},
	{"UnknownTarget", testUnknownTarget},
	{"ServicesTable", testServicesTable},
	{"UnreachableTarget", testUnreachableTarget},
	{"Streaming", testStreaming},
	{"PayloadLimits", testPayloadLimits},
	{"ReplyRouting", testReplyRouting},
	{"Concurrent", testConcurrent},
	{"TargetRouting", testTargetRouting},
	{"Limits", testLimits},
	{"GracefulStop", testGracefulStop},
	{"OperationsData", testOperationsData},
}

// testEcho: every way of calling reaches the demo target and brings back
// its reply and response header.
func testEcho(t *testing.T, e *e2e) {
	for _, cl := range callers {
		t.Run(cl.name, func(t *testing.T) {
			msg := "hello " + cl.name
			var header metadata.MD
			resp, err := ping(testContext(t), cl.conn(t, e.client, "demo"), msg, grpc.Header(&header))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Message != msg || resp.ServedBy != demoName {
				t.Errorf("reply %v, want %q from %s", resp, msg, demoName)
			}
			if got := header.Get("x-served-by"); !slices.Equal(got, []string{demoName}) {
				t.Errorf("header x-served-by = %q, want [%s]", got, demoName)
			}
		})
	}
}

// testCallProtobuf: Client.Call with a protobuf payload, naming the method
// in full, without its leading slash, or by its short name, which the
// server resolves through the target's reflection service.
func testCallProtobuf(t *testing.T, e *e2e) {
	ctx := testContext(t)
	for _, method := range []string{"/demo.Demo/Ping", "demo.Demo/Ping", "Ping"} {
		msg := "hi " + method
		resp, err := e.client.Call(ctx, "demo", method, marshal(t, &demo.Request{Message: msg}), nil)
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		var out demo.Response
		if err := proto.Unmarshal(resp.Payload, &out); err != nil {
			t.Fatalf("%s: reply %q: %v", method, resp.Payload, err)
		}
		if out.Message != msg || out.ServedBy != demoName {
			t.Errorf("%s: reply %v, want %q from %s", method, &out, msg, demoName)
		}
		if got := resp.Header.Get("x-served-by"); !slices.Equal(got, []string{demoName}) {
			t.Errorf("%s: header x-served-by = %q, want [%s]", method, got, demoName)
		}
	}
	_, err := e.client.Call(ctx, "demo", "Pong", nil, nil)
	if status.Code(err) != codes.Unimplemented || !strings.Contains(err.Error(), "/demo.Demo/Ping") {
		t.Errorf("unknown short method: want UNIMPLEMENTED listing the methods, got %v", err)
	}
}

// testCallJSON: Client.Call with a JSON payload gets a JSON reply, with
// the field names asked for; JSON that does not fit the request message
// is refused before it reaches the target.
func testCallJSON(t *testing.T, e *e2e) {
	ctx := testContext(t)
	for _, method := range []string{"Ping", "demo.Demo/Ping"} {
		resp, err := e.client.Call(ctx, "demo", method, []byte(`{"message": "Hello vRPC"}`), nil)
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		if got, want := string(resp.Payload), `{"message":"Hello vRPC","servedBy":"`+demoName+`"}`; got != want {
			t.Errorf("%s: reply %s, want %s", method, got, want)
		}
	}
	resp, err := e.client.Call(ctx, "demo", "Ping", []byte(`{"message": "x"}`), nil, vclient.WithJSONOptions(true, false))
	if want := `{"message":"x","served_by":"` + demoName + `"}`; err != nil || string(resp.Payload) != want {
		t.Errorf("proto field names: reply %s, %v; want %s", resp.GetPayload(), err, want)
	}
	_, err = e.client.Call(ctx, "probe", "Ping", []byte(`{"message": "json-typo", "mesage": "x"}`), nil)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "mesage") {
		t.Errorf("bad JSON: want INVALID_ARGUMENT naming the field, got %v", err)
	}
	if n := e.probe.executed("json-typo"); n != 0 {
		t.Errorf("bad JSON reached the target (%d times)", n)
	}
}

// testStatus: a target's status (code, message with characters gRPC
// escapes, details) reaches the caller as calling the target directly
// would give it, whichever way the caller calls.
func testStatus(t *testing.T, e *e2e) {
	for _, cl := range callers {
		t.Run(cl.name, func(t *testing.T) {
			ctx := testContext(t)
			_, err := ping(ctx, cl.conn(t, e.client, "demo"), "")
			if st := status.Convert(err); st.Code() != codes.InvalidArgument || st.Message() != "message must not be empty" {
				t.Errorf("the demo's refusal of an empty message: got %v, want INVALID_ARGUMENT", err)
			}
			_, err = ping(ctx, cl.conn(t, e.client, "probe"), "error")
			checkProbeError(t, err)
		})
	}
	t.Run("Call", func(t *testing.T) {
		_, err := e.client.Call(testContext(t), "probe", "Ping", marshal(t, &demo.Request{Message: "error"}), nil)
		checkProbeError(t, err)
	})
}

// checkProbeError checks that err is the probe's "error" status.
func checkProbeError(t *testing.T, err error) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.FailedPrecondition || st.Message() != statusMessage {
		t.Fatalf("got code %v message %q, want FAILED_PRECONDITION %q", st.Code(), st.Message(), statusMessage)
	}
	ds := st.Details()
	if len(ds) != 1 {
		t.Fatalf("got %d details (%v), want 1", len(ds), ds)
	}
	if d, ok := ds[0].(*demo.Response); !ok || d.Message != "detail" || d.ServedBy != probeName {
		t.Errorf("detail: got %#v, want the probe's demo.Response", ds[0])
	}
}

// testMetadata: the caller's request metadata reaches the target (every
// value of a repeated key), and the target's response header and trailers
// (a binary one too) reach the caller.
func testMetadata(t *testing.T, e *e2e) {
	for _, cl := range callers {
		t.Run(cl.name, func(t *testing.T) {
			ctx := metadata.AppendToOutgoingContext(testContext(t), "user-id", "12345", "user-id", "67890")
			var header, trailer metadata.MD
			resp, err := ping(ctx, cl.conn(t, e.client, "probe"), "metadata", grpc.Header(&header), grpc.Trailer(&trailer))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Message != "12345,67890" {
				t.Errorf("the target saw user-id %q, want 12345,67890", resp.Message)
			}
			checkProbeMetadata(t, header, trailer)
		})
	}
	t.Run("Call", func(t *testing.T) {
		resp, err := e.client.Call(testContext(t), "probe", "Ping", marshal(t, &demo.Request{Message: "metadata"}), map[string]string{"user-id": "map"})
		if err != nil {
			t.Fatal(err)
		}
		var out demo.Response
		if err := proto.Unmarshal(resp.Payload, &out); err != nil {
			t.Fatal(err)
		}
		if out.Message != "map" {
			t.Errorf("the target saw user-id %q, want map", out.Message)
		}
		checkProbeMetadata(t, resp.Header, resp.Trailer)
	})
}

// checkProbeMetadata checks the header and trailers the probe's
// "metadata" call sets.
func checkProbeMetadata(t *testing.T, header, trailer metadata.MD) {
	t.Helper()
	if got := header.Get("x-header"); !slices.Equal(got, []string{"h1", "h2"}) {
		t.Errorf("header x-header = %q, want [h1 h2] (all: %v)", got, header)
	}
	if got := trailer.Get("x-trailer"); !slices.Equal(got, []string{"t1"}) {
		t.Errorf("trailer x-trailer = %q, want [t1] (all: %v)", got, trailer)
	}
	if got := trailer.Get("x-bin"); !slices.Equal(got, []string{binTrailer}) {
		t.Errorf("trailer x-bin = %q, want [%q]", got, binTrailer)
	}
}

// testDeadlineTravels: the target sees the caller's own deadline, an
// instant carried on the wire, not a fresh timeout started when the server
// read the request; a target timeout shorter than it caps it.
func testDeadlineTravels(t *testing.T, e *e2e) {
	deadline := time.Now().Add(time.Minute)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	resp, err := ping(ctx, vclient.NewConn(e.client, "probe"), "deadline")
	if err != nil {
		t.Fatal(err)
	}
	// The server sends the deadline to the target as a gRPC timeout, which
	// the target starts on receipt: close, not exact.
	if got := parseDeadline(t, resp.Message); got.Sub(deadline).Abs() > 100*time.Millisecond {
		t.Errorf("the target's deadline is %v, the caller's %v", got, deadline)
	}

	resp, err = ping(ctx, vclient.NewConn(e.client, "capped"), "deadline")
	if err != nil {
		t.Fatal(err)
	}
	if got := parseDeadline(t, resp.Message); !got.Before(deadline.Add(-30 * time.Second)) {
		t.Errorf("the capped target's deadline is %v: want about 2s after the call, well before the caller's %v", got, deadline)
	}
}

func parseDeadline(t *testing.T, s string) time.Time {
	t.Helper()
	ns, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("the target answered %q, not its deadline: %v", s, err)
	}
	return time.Unix(0, ns)
}

// testDeadlineExceeded: a call whose target is still busy at the caller's
// deadline ends with DEADLINE_EXCEEDED (the deadline ends it, not the
// target), and the client no longer holds it.
func testDeadlineExceeded(t *testing.T, e *e2e) {
	c := e.newClient(t, "e2e-deadline")
	for _, cl := range callers {
		t.Run(cl.name, func(t *testing.T) {
			conn := cl.conn(t, c, "probe")
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			err := within(t, func() error { _, err := ping(ctx, conn, "block"); return err })
			if status.Code(err) != codes.DeadlineExceeded {
				t.Errorf("want DEADLINE_EXCEEDED, got %v", err)
			}
			eventually(t, "no call pending", func() bool { return c.Pending() == 0 })
		})
	}
}

// testCanceled: cancelling a call waiting for its reply ends it with
// CANCELED and frees its place in the client.
func testCanceled(t *testing.T, e *e2e) {
	c := e.newClient(t, "e2e-cancel")
	for _, cl := range callers {
		t.Run(cl.name, func(t *testing.T) {
			conn := cl.conn(t, c, "probe")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errc := make(chan error, 1)
			go func() { _, err := ping(ctx, conn, "block"); errc <- err }()
			eventually(t, "the call pending", func() bool {
				select {
				case err := <-errc:
					t.Fatalf("the call ended before it was cancelled: %v (pending %d)", err, c.Pending())
				default:
				}
				return c.Pending() == 1
			})
			cancel()
			err := within(t, func() error { return <-errc })
			if status.Code(err) != codes.Canceled {
				t.Errorf("want CANCELED, got %v", err)
			}
			eventually(t, "no call pending", func() bool { return c.Pending() == 0 })
		})
	}
}

// testUnknownTarget: a call to a target no server serves fails with
// UNIMPLEMENTED naming it; it does not wait for its deadline. So does a
// call through the interceptor that names no target at all.
func testUnknownTarget(t *testing.T, e *e2e) {
	for _, cl := range callers {
		t.Run(cl.name, func(t *testing.T) {
			_, err := ping(testContext(t), cl.conn(t, e.client, "nosuch"), "x")
			if status.Code(err) != codes.Unimplemented || !strings.Contains(err.Error(), "nosuch") {
				t.Errorf("want UNIMPLEMENTED naming the target, got %v", err)
			}
		})
	}
	t.Run("NoTarget", func(t *testing.T) {
		conn := dial(t, "passthrough:///"+unreachable, grpc.WithUnaryInterceptor(e.client.UnaryClientInterceptor()))
		if _, err := ping(testContext(t), conn, "x"); status.Code(err) != codes.Unimplemented {
			t.Errorf("want UNIMPLEMENTED, got %v", err)
		}
	})
}

// testServicesTable: the client's services table names the target of a
// call whose conn and interceptor name none, by the prefix of its
// service's full name.
func testServicesTable(t *testing.T, e *e2e) {
	cfg := e.clientConfig("e2e-services")
	cfg.Services = map[string]string{"demo.": "demo"}
	c := StartClient(t, cfg)
	conn := dial(t, "passthrough:///"+unreachable, grpc.WithUnaryInterceptor(c.UnaryClientInterceptor()))
	resp, err := ping(testContext(t), conn, "table")
	if err != nil || resp.Message != "table" || resp.ServedBy != demoName {
		t.Errorf("got %v, %v; want %q from %s", resp, err, "table", demoName)
	}
}

// testUnreachableTarget: a call to a target the server cannot reach fails
// with UNAVAILABLE (the caller's deadline is a minute: the server did not
// wait for the target to come up).
func testUnreachableTarget(t *testing.T, e *e2e) {
	for _, cl := range callers {
		t.Run(cl.name, func(t *testing.T) {
			_, err := ping(testContext(t), cl.conn(t, e.client, "down"), "x")
			if status.Code(err) != codes.Unavailable {
				t.Errorf("want UNAVAILABLE, got %v", err)
			}
		})
	}
}

// testStreaming: vRPC carries unary calls; a stream is refused with
// UNIMPLEMENTED.
func testStreaming(t *testing.T, e *e2e) {
	_, err := vclient.NewConn(e.client, "demo").NewStream(testContext(t), &grpc.StreamDesc{}, "/demo.Demo/Stream")
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("want UNIMPLEMENTED, got %v", err)
	}
}

// testPayloadLimits: a request just under the client's max_message_bytes
// comes back whole; one over it fails with RESOURCE_EXHAUSTED and never
// reaches the target; an empty request (zero bytes of protobuf) is a
// request like any other.
func testPayloadLimits(t *testing.T, e *e2e) {
	ctx := testContext(t)
	conn := vclient.NewConn(e.client, "probe")
	limit := e.client.Config().MaxMessageBytes
	t.Run("UnderTheMax", func(t *testing.T) {
		// With its protobuf framing, just under the max; so is the reply,
		// which adds the probe's name (gRPC's own limit is 4 MiB too).
		big := strings.Repeat("x", limit-16-len(probeName))
		if max := e.busMaxPayload(t); max > 0 && max < limit+envelopeBudget {
			t.Skipf("the bus carries at most %d bytes (MaxPayload): the client's max of %d does not fit", max, limit)
		}
		resp, err := ping(ctx, conn, big)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Message != big {
			t.Errorf("got %d bytes back, want %d", len(resp.Message), len(big))
		}
	})
	t.Run("OverTheMax", func(t *testing.T) {
		_, err := ping(ctx, conn, strings.Repeat("o", limit+48))
		if status.Code(err) != codes.ResourceExhausted {
			t.Errorf("want RESOURCE_EXHAUSTED, got %v", err)
		}
		if n := e.probe.executedPrefix("o"); n != 0 {
			t.Errorf("an oversized request reached the target (%d times)", n)
		}
	})
	t.Run("Empty", func(t *testing.T) {
		resp, err := ping(ctx, conn, "")
		if err != nil || resp.Message != "" || resp.ServedBy != probeName {
			t.Errorf("got %v, %v; want the empty message echoed by %s", resp, err, probeName)
		}
	})
}

// testReplyRouting: clients calling at once each get their own replies,
// two of them instances with one client id (whose reply addresses share
// a topic on some buses).
func testReplyRouting(t *testing.T, e *e2e) {
	ctx := testContext(t)
	ids := []string{"e2e-alpha", "e2e-beta", "e2e-beta"}
	var wg sync.WaitGroup
	errs := make(chan error, len(ids))
	for i, id := range ids {
		conn := vclient.NewConn(e.newClient(t, id), "demo")
		wg.Go(func() { errs <- CallMany(ctx, conn, fmt.Sprintf("%s-%d", id, i), 100, demoName) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// testConcurrent: calls in flight at once through one client are each
// answered with their own reply, and the target executes each once.
func testConcurrent(t *testing.T, e *e2e) {
	const n = 200
	if err := CallMany(testContext(t), vclient.NewConn(e.client, "probe"), "concurrent", n, probeName); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if msg := fmt.Sprintf("concurrent-%d", i); e.probe.executed(msg) != 1 {
			t.Errorf("the target executed %s %d times, want once", msg, e.probe.executed(msg))
		}
	}
}

// testTargetRouting: a server consumes the requests of its own targets
// only, and servers of one name share their target's requests.
func testTargetRouting(t *testing.T, e *e2e) {
	a, addrA := startProbe(t, "routing-a")
	b1, addrB1 := startProbe(t, "routing-b1")
	b2, addrB2 := startProbe(t, "routing-b2")
	StartServer(t, e.serverConfig("alpha", map[string]vrpc.Target{"alpha": {Endpoint: addrA}}))
	StartServer(t, e.serverConfig("beta", map[string]vrpc.Target{"beta": {Endpoint: addrB1}}))
	StartServer(t, e.serverConfig("beta", map[string]vrpc.Target{"beta": {Endpoint: addrB2}}))
	ctx := testContext(t)

	alpha := vclient.NewConn(e.client, "alpha")
	const calls = 20
	for i := range calls {
		if resp, err := ping(ctx, alpha, "a"+strconv.Itoa(i)); err != nil || resp.ServedBy != "routing-a" {
			t.Fatalf("alpha: got %v, %v; want a reply from routing-a", resp, err)
		}
	}
	if n := b1.executedPrefix("") + b2.executedPrefix(""); n != 0 {
		t.Fatalf("beta's servers forwarded %d of alpha's requests", n)
	}
	// Keep calling until both beta servers have served (a group spreads
	// its work over its members as the bus does); every reply must come
	// from one of them.
	beta := vclient.NewConn(e.client, "beta")
	for i := 0; b1.executedPrefix("") == 0 || b2.executedPrefix("") == 0; i++ {
		if i == 2000 {
			t.Fatalf("after %d calls: b1 served %d, b2 served %d", i, b1.executedPrefix(""), b2.executedPrefix(""))
		}
		resp, err := ping(ctx, beta, "b"+strconv.Itoa(i))
		if err != nil || (resp.ServedBy != "routing-b1" && resp.ServedBy != "routing-b2") {
			t.Fatalf("beta: got %v, %v; want a reply from routing-b1 or routing-b2", resp, err)
		}
	}
	if n := a.executedPrefix(""); n != calls {
		t.Fatalf("alpha's target executed %d calls, want %d", n, calls)
	}
}

// testGracefulStop: a call in flight when its server begins to stop still
// gets its reply, and Start then returns nil.
func testGracefulStop(t *testing.T, e *e2e) {
	p, addr := startProbe(t, "stopping")
	t.Cleanup(p.unblock)
	s, err := vserver.NewServer(e.serverConfig("stopping", map[string]vrpc.Target{"stopping": {Endpoint: addr}}))
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Start() }()
	t.Cleanup(s.Stop) // should the test end early
	select {
	case <-s.Ready():
	case err := <-errc:
		t.Fatalf("server did not start: %v", err)
	}

	callErr := make(chan error, 1)
	go func() {
		resp, err := ping(testContext(t), vclient.NewConn(e.client, "stopping"), "block")
		if err == nil && resp.Message != "block" {
			err = fmt.Errorf("reply %v, want %q", resp, "block")
		}
		callErr <- err
	}()
	eventually(t, "the call at the target", func() bool { return p.executed("block") == 1 })
	stopped := make(chan struct{})
	go func() { s.Stop(); close(stopped) }()
	p.unblock()
	if err := within(t, func() error { return <-callErr }); err != nil {
		t.Errorf("the call in flight during Stop: %v", err)
	}
	within(t, func() error { <-stopped; return nil })
	if err := within(t, func() error { return <-errc }); err != nil {
		t.Errorf("Start returned %v after Stop", err)
	}
}

// CallMany makes n calls at once through conn, "<prefix>-<i>", and checks
// that each is answered with its own message by servedBy.
func CallMany(ctx context.Context, conn grpc.ClientConnInterface, prefix string, n int, servedBy string) error {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			msg := fmt.Sprintf("%s-%d", prefix, i)
			resp, err := ping(ctx, conn, msg)
			if err == nil && (resp.Message != msg || resp.ServedBy != servedBy) {
				err = fmt.Errorf("reply %v, want %q from %s", resp, msg, servedBy)
			}
			if err != nil {
				errs <- fmt.Errorf("call %s: %w", msg, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	if failed := len(errs); failed > 0 {
		return fmt.Errorf("%d of %d calls failed, among them: %w", failed, n, <-errs)
	}
	return nil
}

// within returns what f returns, or fails t if f still runs after
// waitLimit.
func within(t *testing.T, f func() error) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- f() }()
	select {
	case err := <-errc:
		return err
	case <-time.After(waitLimit):
		t.Fatalf("the call still runs after %v", waitLimit)
		return nil
	}
}

func marshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testLimits: a request whose metadata or ids are over the server's
// limits is answered with a status (when it can be), never forwarded, and
// never leaves the caller waiting for its deadline; the server goes on
// serving.
func testLimits(t *testing.T, e *e2e) {
	ctx := testContext(t)
	conn := vclient.NewConn(e.client, "probe")
	t.Run("MetadataOverTheMax", func(t *testing.T) {
		md := metadata.AppendToOutgoingContext(ctx, "x-big", strings.Repeat("m", 2*vrpc.DefaultMaxMetadataBytes))
		_, err := ping(md, conn, "limits-metadata")
		if status.Code(err) != codes.ResourceExhausted || !strings.Contains(status.Convert(err).Message(), "max_metadata_bytes") {
			t.Errorf("metadata of twice max_metadata_bytes: got %v, want RESOURCE_EXHAUSTED naming max_metadata_bytes", err)
		}
		if n := e.probe.executed("limits-metadata"); n != 0 {
			t.Errorf("the target executed it %d times", n)
		}
	})
	t.Run("MetadataOfMegabytes", func(t *testing.T) {
		// Over the client's max_message_bytes or the bus's limit, if not
		// over the server's: whichever refuses it says so.
		md := metadata.AppendToOutgoingContext(ctx, "x-huge", strings.Repeat("m", 4<<20))
		_, err := ping(md, conn, "limits-huge-metadata")
		if code := status.Code(err); code == codes.OK || code == codes.DeadlineExceeded {
			t.Errorf("4 MiB of metadata: got %v, want a status that says why", err)
		}
		if n := e.probe.executed("limits-huge-metadata"); n != 0 {
			t.Errorf("the target executed it %d times", n)
		}
	})
	t.Run("IDsOverTheMax", func(t *testing.T) {
		raw, err := rpcbus.New(e.bus)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = raw.Close() }()
		replies := make(chan *vrpcpb.Response, 4)
		_, responses := e.topics()
		inbox, err := raw.(rpcbus.Inboxer).Inbox(ctx, responses+".limits-raw", func(m *rpcbus.Message) {
			if resp, err := codec.DecodeResponse(m.Value); err == nil {
				replies <- resp
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = inbox.Close() }()
		request, _ := e.topics()
		long := strings.Repeat("i", 64<<10)
		publish := func(id, clientID string) {
			b, err := codec.EncodeRequest(&vrpcpb.Request{Id: id, ClientId: clientID, ReplyTo: inbox.Address(), Target: "probe",
				Method: "/demo.Demo/Ping", Payload: marshal(t, &demo.Request{Message: "limits-ids"}),
				DeadlineUnixNano: time.Now().Add(waitLimit).UnixNano()})
			if err != nil {
				t.Fatal(err)
			}
			if err := raw.Publish(ctx, request+".probe", &rpcbus.Message{Value: b}); err != nil {
				t.Fatal(err)
			}
		}
		// A 64 KiB id: set aside, not answered (the reply would carry it).
		publish("limits-"+long, "limits-raw")
		// A 64 KiB client id: answered, as the id and address are short;
		// unless the server authenticates its clients, as it answers
		// nothing unsigned.
		publish("limits-long-client", long)
		if e.keys != nil {
			if _, err := ping(ctx, conn, "limits-after"); err != nil {
				t.Fatalf("a call after the long ids: %v", err)
			}
			select {
			case resp := <-replies:
				t.Errorf("a secured server answered an unsigned request: %v", resp.GetStatus())
			default:
			}
			if n := e.probe.executed("limits-ids"); n != 0 {
				t.Errorf("the target executed a request with long ids %d times", n)
			}
			return
		}
		select {
		case resp := <-replies:
			if resp.Id != "limits-long-client" || codes.Code(resp.GetStatus().GetCode()) != codes.InvalidArgument ||
				!strings.Contains(resp.GetStatus().GetMessage(), "max_id_bytes") {
				t.Errorf("got reply %s %v, want limits-long-client INVALID_ARGUMENT naming max_id_bytes", plugin.Clip(resp.Id), resp.GetStatus())
			}
		case <-ctx.Done():
			t.Fatal("no reply to a request with a 64 KiB client id")
		}
		// The server goes on serving; the request with the long id was
		// never answered (it came first: the later reply is there).
		if _, err := ping(ctx, conn, "limits-after"); err != nil {
			t.Fatalf("a call after the long ids: %v", err)
		}
		select {
		case resp := <-replies:
			t.Errorf("a request with a 64 KiB id was answered: %v", resp.GetStatus())
		default:
		}
		if n := e.probe.executed("limits-ids"); n != 0 {
			t.Errorf("the target executed a request with a long id %d times", n)
		}
	})
}
