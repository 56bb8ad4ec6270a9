package vgateway_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/internal/vtest"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vclient"
	"github.com/nextpkg/vrpc/vgateway"
)

// heldTarget is demo.Demo for the limit tests: a message starting with
// "hold" waits for release (or the call's end); anything else is echoed.
// It counts the calls that reached it.
type heldTarget struct {
	demo.UnimplementedDemoServer
	calls   atomic.Int64
	arrived chan struct{}
	release chan struct{}
}

func (h *heldTarget) Ping(ctx context.Context, r *demo.Request) (*demo.Response, error) {
	h.calls.Add(1)
	if strings.HasPrefix(r.Message, "hold") {
		h.arrived <- struct{}{}
		select {
		case <-h.release:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	return &demo.Response{Message: r.Message}, nil
}

// limitsEnv is a heldTarget on loopback (target "held"), a vRPC server for
// it on bus, and a gateway configured by gw whose client is configured by
// cc. dial opens a new connection to the gateway.
type limitsEnv struct {
	tg     *heldTarget
	client *vclient.Client
	gw     *vgateway.Gateway
	addr   string // the gateway's
	target string // the heldTarget's
}

func newLimitsEnv(t *testing.T, bus rpcbus.Config, cc vclient.Config, gw vgateway.Config) *limitsEnv {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &limitsEnv{tg: &heldTarget{arrived: make(chan struct{}, 4096), release: make(chan struct{})}}
	gs := grpc.NewServer()
	demo.RegisterDemoServer(gs, e.tg)
	served := make(chan struct{})
	go func() { defer close(served); _ = gs.Serve(lis) }()
	t.Cleanup(func() { gs.Stop(); <-served })
	t.Cleanup(func() { close(e.tg.release) }) // first: lets everything drain

	e.target = lis.Addr().String()
	vtest.StartServer(t, vtest.ServerConfig(bus, map[string]vrpc.Target{"held": {Endpoint: e.target}}))
	cc.RpcBus = bus
	cc.Services = map[string]string{"demo.Demo": "held"}
	e.client = vtest.StartClient(t, cc)
	e.gw, err = vgateway.New(e.client, gw)
	if err != nil {
		t.Fatal(err)
	}
	glis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = glis.Addr().String()
	done := make(chan error, 1)
	go func() { done <- e.gw.Serve(glis) }()
	t.Cleanup(func() {
		e.gw.Stop()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return e
}

func (e *limitsEnv) dial(t *testing.T) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(8<<20), grpc.MaxCallSendMsgSize(8<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func memoryBus(t *testing.T) rpcbus.Config {
	return rpcbus.Config{Type: "memory", Brokers: []string{fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano())}}
}

// TestInFlightBytes: while held calls hold max_in_flight_bytes of
// requests, a call that does not fit fails at once with RESOURCE_EXHAUSTED
// before it reaches the target, a small one still goes, and the bytes are
// free again once the held calls return; on the memory bus and on Kafka.
func TestInFlightBytes(t *testing.T) {
	t.Parallel()
	const (
		maxMsg   = 32 << 10
		inFlight = 48 << 10
		reqSize  = 20 << 10
	)
	for _, bc := range []struct {
		name string
		bus  func(*testing.T) rpcbus.Config
	}{
		{"memory", memoryBus},
		{"kafka", func(t *testing.T) rpcbus.Config { return vtest.StartKafka(t) }},
	} {
		t.Run(bc.name, func(t *testing.T) {
			t.Parallel()
			e := newLimitsEnv(t, bc.bus(t), vclient.Config{ClientID: "gw-inflight"},
				vgateway.Config{MaxMessageBytes: maxMsg, MaxInFlightBytes: inFlight})
			conn := e.dial(t)
			ctx := testContext(t)
			held := func(tag string) string { return "hold" + tag + strings.Repeat("b", reqSize) }

			errc := make(chan error, 2)
			for i := range 2 {
				go func() {
					_, err := ping(ctx, conn, held(fmt.Sprint(i)))
					errc <- err
				}()
				<-e.tg.arrived
			}
			if n := e.gw.InFlightBytes(); n < 2*reqSize || n > inFlight {
				t.Fatalf("InFlightBytes with two 20 KiB calls held = %d", n)
			}
			// Bounded so that a gateway that queued the call fails this
			// test soon; the assertion is on the code.
			short, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			_, err := ping(short, conn, held("3"))
			if status.Code(err) != codes.ResourceExhausted || !strings.Contains(status.Convert(err).Message(), "max_in_flight_bytes") {
				t.Fatalf("a third 20 KiB call over max_in_flight_bytes: got %v, want RESOURCE_EXHAUSTED naming gateway.max_in_flight_bytes", err)
			}
			if got := e.tg.calls.Load(); got != 2 {
				t.Errorf("the target saw %d calls, want the 2 held ones", got)
			}
			if resp, err := ping(ctx, conn, "small"); err != nil || resp.Message != "small" {
				t.Fatalf("a small call under max_in_flight_bytes: %v, %v", resp, err)
			}
			e.tg.release <- struct{}{}
			e.tg.release <- struct{}{}
			for range 2 {
				if err := <-errc; err != nil {
					t.Fatalf("held call: %v", err)
				}
			}
			// A call's bytes are released before its status is sent.
			if n := e.gw.InFlightBytes(); n != 0 {
				t.Fatalf("InFlightBytes after every call returned = %d, want 0", n)
			}
			go func() { <-e.tg.arrived; e.tg.release <- struct{}{} }()
			if _, err := ping(ctx, conn, held("4")); err != nil {
				t.Fatalf("a 20 KiB call once the bytes are free: %v", err)
			}
		})
	}
}

// TestConcurrentStreams: max_concurrent_streams bounds the calls open on
// one connection, not across them: with two held on one connection, a
// third there waits in the caller's gRPC library and never reaches the
// target, while a call on another connection goes through.
func TestConcurrentStreams(t *testing.T) {
	t.Parallel()
	e := newLimitsEnv(t, memoryBus(t), vclient.Config{ClientID: "gw-streams"}, vgateway.Config{MaxConcurrentStreams: 2})
	a, b := e.dial(t), e.dial(t)
	ctx := testContext(t)
	errc := make(chan error, 3)
	for i := range 2 {
		go func() { _, err := ping(ctx, a, fmt.Sprintf("hold-a%d", i)); errc <- err }()
		<-e.tg.arrived
	}
	// The third call on a: the target must not see it. Its deadline only
	// ends the wait, long enough that a call let through would reach the
	// target first; what is checked is that it never arrived.
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := ping(short, a, "hold-a3"); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("third call on one connection: got %v, want DEADLINE_EXCEEDED (waiting for a stream)", err)
	}
	if got := e.tg.calls.Load(); got != 2 {
		t.Fatalf("the target saw %d calls, want the 2 held on a: the third on a got a stream", got)
	}
	go func() { _, err := ping(ctx, b, "hold-b"); errc <- err }()
	<-e.tg.arrived
	if got := e.tg.calls.Load(); got != 3 {
		t.Errorf("the target saw %d calls, want 3 (two on a, one on b)", got)
	}
	for range 3 {
		e.tg.release <- struct{}{}
	}
	for range 3 {
		if err := <-errc; err != nil {
			t.Errorf("held call: %v", err)
		}
	}
}

// TestGatewayMetadataAndMessageLimits: request metadata over the client's
// max_metadata_bytes is RESOURCE_EXHAUSTED; over the header list cap
// gRPC's transport refuses it (INTERNAL, from the caller's own library,
// which reads the cap from the gateway's HTTP/2 settings); a request over the client's max_message_bytes is
// refused by the gateway's gRPC edge, clamped to it. None reaches the
// target.
func TestGatewayMetadataAndMessageLimits(t *testing.T) {
	t.Parallel()
	const (
		maxMD  = 1024
		maxMsg = 16 << 10
	)
	e := newLimitsEnv(t, memoryBus(t), vclient.Config{ClientID: "gw-md", MaxMetadataBytes: maxMD, MaxMessageBytes: maxMsg}, vgateway.Config{})
	cfg := e.gw.Config()
	if cfg.MaxMessageBytes != maxMsg {
		t.Errorf("gateway max_message_bytes = %d, want the client's %d", cfg.MaxMessageBytes, maxMsg)
	}
	if want := 2*maxMD + 16<<10; cfg.MaxHeaderListBytes != want {
		t.Errorf("gateway max_header_list_bytes = %d, want %d", cfg.MaxHeaderListBytes, want)
	}
	conn := e.dial(t)
	ctx := testContext(t)
	for _, tc := range []struct {
		name string
		md   metadata.MD
		msg  string
		want codes.Code
	}{
		{"metadata under", metadata.Pairs("x-md", strings.Repeat("m", maxMD-8)), "a", codes.OK},
		{"metadata over max_metadata_bytes", metadata.Pairs("x-md", strings.Repeat("m", 2*maxMD)), "b", codes.ResourceExhausted},
		{"metadata over the header list cap", metadata.Pairs("x-md", strings.Repeat("m", 64<<10)), "c", codes.Internal},
		{"message over the client's max", nil, strings.Repeat("o", maxMsg), codes.ResourceExhausted},
	} {
		before := e.tg.calls.Load()
		_, err := ping(metadata.NewOutgoingContext(ctx, tc.md), conn, tc.msg)
		reached := e.tg.calls.Load() - before
		switch {
		case tc.want == codes.OK:
			if err != nil || reached != 1 {
				t.Errorf("%s: %v (reached the target %d times)", tc.name, err, reached)
			}
			continue
		case status.Code(err) != tc.want:
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
		if reached != 0 {
			t.Errorf("%s: refused, yet the call reached the target", tc.name)
		}
	}
}

// footprint is the live heap and the goroutine stacks, after a GC, and the
// goroutine count.
func footprint() (heap, stacks uint64, goroutines int) {
	// Twice: the first GC moves pooled buffers (sync.Pool, gRPC's buffer
	// pools) of an earlier measurement to the victim cache, the second
	// frees them.
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, ms.StackInuse, runtime.NumGoroutine()
}

// writeProfiles writes the heap profile and the goroutines, grouped by
// stack, to dir as <name>.heap and <name>.goroutines.
func writeProfiles(t *testing.T, dir, name string) {
	for _, p := range []struct {
		profile, ext string
		debug        int
	}{{"heap", "heap", 0}, {"goroutine", "goroutines", 1}} {
		f, err := os.Create(filepath.Join(dir, name+"."+p.ext))
		if err != nil {
			t.Fatal(err)
		}
		if err := pprof.Lookup(p.profile).WriteTo(f, p.debug); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPendingCallMemory measures what a call waiting for its reply costs
// the process, held at the target so that it stays pending: through the
// gateway (a gRPC caller, the gateway, its client, the bus, the server, the
// target, all in this process), through the client alone (the same
// without the caller and the gateway), and a direct gRPC call to the
// target. The gateway's share is the first less the second: the caller's
// gRPC stream, the gateway's gRPC stream and handler. It must stay within
// two direct gRPC calls' worth (a call through the gateway is two gRPC
// calls). Set VRPC_PENDING_PROFILE_DIR to a directory to get the heap
// profile and the goroutines taken with each set of calls pending.
func TestPendingCallMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("measures memory with 1000 calls pending")
	}
	// Not parallel: it measures the whole process.
	const n = 1000 // within the server's max_in_flight (1024)
	if os.Getenv("VRPC_PENDING_PROFILE_DIR") != "" {
		defer func(rate int) { runtime.MemProfileRate = rate }(runtime.MemProfileRate)
		runtime.MemProfileRate = 64 // a sample every 64 bytes: per call, to the byte
	}
	e := newLimitsEnv(t, memoryBus(t), vclient.Config{ClientID: "gw-memory"}, vgateway.Config{})
	ctx := testContext(t)
	conn := e.dial(t)
	direct, err := grpc.NewClient(e.target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	req := func(i int) []byte {
		b, _ := proto.Marshal(&demo.Request{Message: fmt.Sprintf("hold-%04d", i)})
		return b
	}
	// Warm every path up, so that what is measured is per call.
	warm, _ := proto.Marshal(&demo.Request{Message: "warm"})
	if _, err := ping(ctx, conn, "warm"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.Invoke(ctx, "held", "/demo.Demo/Ping", warm, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ping(ctx, direct, "warm"); err != nil {
		t.Fatal(err)
	}

	measure := func(name string, call func(i int) error) (perCall float64, goroutinesPerCall float64) {
		h0, s0, g0 := footprint()
		errc := make(chan error, n)
		for i := range n {
			go func() { errc <- call(i) }()
		}
		for range n {
			<-e.tg.arrived
		}
		h1, s1, g1 := footprint()
		if dir := os.Getenv("VRPC_PENDING_PROFILE_DIR"); dir != "" {
			writeProfiles(t, dir, name)
		}
		for range n {
			e.tg.release <- struct{}{}
		}
		for range n {
			if err := <-errc; err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		heap, stacks := (float64(h1)-float64(h0))/n, (float64(s1)-float64(s0))/n
		perCall, goroutinesPerCall = heap+stacks, float64(g1-g0)/n
		t.Logf("%-8s %6.0f bytes (heap %6.0f, stacks %6.0f) and %.2f goroutines per pending call", name, perCall, heap, stacks, goroutinesPerCall)
		return perCall, goroutinesPerCall
	}
	gwBytes, gwG := measure("gateway", func(i int) error {
		_, err := ping(ctx, conn, fmt.Sprintf("hold-%04d", i))
		return err
	})
	clBytes, clG := measure("client", func(i int) error {
		_, err := e.client.Invoke(ctx, "held", "/demo.Demo/Ping", req(i), nil)
		return err
	})
	dBytes, dG := measure("direct", func(i int) error {
		_, err := ping(ctx, direct, fmt.Sprintf("hold-%04d", i))
		return err
	})
	share, shareG := gwBytes-clBytes, gwG-clG
	t.Logf("gateway's share: %.0f bytes and %.2f goroutines per pending call (a direct gRPC call: %.0f bytes, %.2f goroutines)", share, shareG, dBytes, dG)
	if share > 2*dBytes+4096 {
		t.Errorf("the gateway adds %.0f bytes per pending call, over twice a direct gRPC call's %.0f (plus 4 KiB)", share, dBytes)
	}
	if shareG > dG+0.5 {
		t.Errorf("the gateway adds %.2f goroutines per pending call, more than a direct gRPC call's %.2f", shareG, dG)
	}
}

// rawConn is an HTTP/2 connection to the gateway with no gRPC library in
// between, so that a test controls every ping.
type rawConn struct {
	net.Conn
	fr *http2.Framer
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	// A bound on every read, so that a gateway that never answers fails
	// the test instead of hanging it; no assertion is about time.
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	r := &rawConn{Conn: c, fr: http2.NewFramer(c, c)}
	if err := r.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return r
}

// next reads frames until one that is not SETTINGS, WINDOW_UPDATE or a
// ping ack; SETTINGS are acknowledged.
func (r *rawConn) next(t *testing.T) (http2.Frame, error) {
	t.Helper()
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			return nil, err
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				if err := r.fr.WriteSettingsAck(); err != nil {
					return nil, err
				}
			}
			continue
		case *http2.WindowUpdateFrame:
			continue
		}
		return f, nil
	}
}

// TestKeepalive: the gateway sends GOAWAY (ENHANCE_YOUR_CALM,
// too_many_pings) to a caller that pings more often than
// keepalive.min_time, answers one that keeps to it, and pings an idle
// caller every keepalive.time, closing the connection when the ping goes
// unanswered for keepalive.timeout.
func TestKeepalive(t *testing.T) {
	t.Parallel()
	t.Run("pings too often", func(t *testing.T) {
		t.Parallel()
		e := newLimitsEnv(t, memoryBus(t), vclient.Config{ClientID: "ka-often"}, vgateway.Config{}) // min_time 10s
		r := dialRaw(t, e.addr)
		for i := range 5 {
			if err := r.fr.WritePing(false, [8]byte{byte(i)}); err != nil {
				break // the gateway may have closed already
			}
		}
		for {
			f, err := r.next(t)
			if err != nil {
				t.Fatalf("connection ended without GOAWAY: %v", err)
			}
			if ga, ok := f.(*http2.GoAwayFrame); ok {
				if ga.ErrCode != http2.ErrCodeEnhanceYourCalm || string(ga.DebugData()) != "too_many_pings" {
					t.Errorf("GOAWAY %v %q, want ENHANCE_YOUR_CALM too_many_pings", ga.ErrCode, ga.DebugData())
				}
				return
			}
		}
	})
	t.Run("pings within min_time", func(t *testing.T) {
		t.Parallel()
		gw := vgateway.Config{}
		gw.Keepalive.MinTime = time.Millisecond
		e := newLimitsEnv(t, memoryBus(t), vclient.Config{ClientID: "ka-polite"}, gw)
		r := dialRaw(t, e.addr)
		for i := range 5 {
			time.Sleep(20 * time.Millisecond) // 20 times min_time
			if err := r.fr.WritePing(false, [8]byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
			f, err := r.next(t)
			if err != nil {
				t.Fatalf("ping %d: %v", i, err)
			}
			if p, ok := f.(*http2.PingFrame); !ok || !p.IsAck() || p.Data[0] != byte(i) {
				t.Fatalf("ping %d: got %v, want its ack", i, f)
			}
		}
	})
	t.Run("idle caller", func(t *testing.T) {
		t.Parallel()
		gw := vgateway.Config{}
		gw.Keepalive.Time, gw.Keepalive.Timeout = time.Second, time.Second // gRPC's minimum time is 1s
		e := newLimitsEnv(t, memoryBus(t), vclient.Config{ClientID: "ka-idle"}, gw)
		r := dialRaw(t, e.addr)
		f, err := r.next(t)
		if err != nil {
			t.Fatalf("no ping from the gateway: %v", err)
		}
		if p, ok := f.(*http2.PingFrame); !ok || p.IsAck() {
			t.Fatalf("got %v, want the gateway's ping", f)
		}
		// Not answered: the gateway ends the connection.
		for {
			f, err := r.next(t)
			if err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatalf("the connection stayed open with its ping unanswered: %v", err)
				}
				return // closed
			}
			if _, ok := f.(*http2.GoAwayFrame); ok {
				return
			}
		}
	})
}
