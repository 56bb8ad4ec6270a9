package vclient_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/internal/vtest"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vclient"
)

// sizedDemo is a target for the limit tests: "reply:N" answers with N
// bytes, "hold" waits for release (or the call's end), anything else is
// echoed. It counts the calls that reached it.
type sizedDemo struct {
	demo.UnimplementedDemoServer
	calls   atomic.Int64
	arrived chan struct{}
	release chan struct{}
}

func (s *sizedDemo) Ping(ctx context.Context, r *demo.Request) (*demo.Response, error) {
	s.calls.Add(1)
	if n, ok := strings.CutPrefix(r.Message, "reply:"); ok {
		size, _ := strconv.Atoi(n)
		return &demo.Response{Message: strings.Repeat("r", size)}, nil
	}
	if strings.HasPrefix(r.Message, "hold") {
		s.arrived <- struct{}{}
		select {
		case <-s.release:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	return &demo.Response{Message: r.Message}, nil
}

// limitsDeployment is a vRPC server on bus in front of a sizedDemo on
// loopback, as target "demo", and a client configured by cfg.
func limitsDeployment(t *testing.T, bus rpcbus.Config, cfg vclient.Config) (*vclient.Client, *sizedDemo) {
	t.Helper()
	slog.SetDefault(slog.New(slog.DiscardHandler))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	tg := &sizedDemo{arrived: make(chan struct{}, 16), release: make(chan struct{})}
	demo.RegisterDemoServer(gs, tg)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	t.Cleanup(func() { close(tg.release) }) // before the server's Stop: lets it drain

	vtest.StartServer(t, vtest.ServerConfig(bus, map[string]vrpc.Target{"demo": {Endpoint: lis.Addr().String()}}))
	cfg.RpcBus = bus
	return vtest.StartClient(t, cfg), tg
}

func memoryBus(t *testing.T) rpcbus.Config {
	return rpcbus.Config{Type: "memory", Brokers: []string{fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano())}}
}

func limitsContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func pingBytes(t *testing.T, msg string) []byte {
	b, err := proto.Marshal(&demo.Request{Message: msg})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMetadataLimit: outgoing metadata over max_metadata_bytes fails with
// RESOURCE_EXHAUSTED before anything is published (the target never sees
// it); metadata at the limit goes through. Binary values count as the
// envelope carries them, base64-encoded.
func TestMetadataLimit(t *testing.T) {
	t.Parallel()
	const limit = 1024
	c, tg := limitsDeployment(t, memoryBus(t), vclient.Config{ClientID: "md-limit", MaxMetadataBytes: limit})
	ctx := limitsContext(t)
	key := "x-big"
	for _, tc := range []struct {
		name string
		md   map[string]string
		want codes.Code
	}{
		{"at the limit", map[string]string{key: strings.Repeat("v", limit-len(key))}, codes.OK},
		{"one byte over", map[string]string{key: strings.Repeat("v", limit-len(key)+1)}, codes.ResourceExhausted},
		{"over in many keys", manyKeys(64, 32), codes.ResourceExhausted},
		// 600 raw bytes are 800 in base64: under 1024 with the key.
		{"binary under", map[string]string{"x-b-bin": strings.Repeat("\x00", 600)}, codes.OK},
		// 768 raw bytes are 1024 in base64, over the limit with the key.
		{"binary over once encoded", map[string]string{"x-b-bin": strings.Repeat("\x00", 768)}, codes.ResourceExhausted},
	} {
		before := tg.calls.Load()
		_, err := c.Call(ctx, "demo", "/demo.Demo/Ping", pingBytes(t, tc.name), tc.md)
		if got := status.Code(err); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
			continue
		}
		reached := tg.calls.Load() - before
		if tc.want == codes.ResourceExhausted {
			if reached != 0 {
				t.Errorf("%s: refused, yet the call reached the target", tc.name)
			}
			if !strings.Contains(status.Convert(err).Message(), "max_metadata_bytes") {
				t.Errorf("%s: the error does not name max_metadata_bytes: %v", tc.name, err)
			}
		}
	}
	if n := c.PendingBytes(); n != 0 {
		t.Errorf("PendingBytes after every call returned = %d, want 0", n)
	}
}

func manyKeys(n, valueLen int) map[string]string {
	md := make(map[string]string, n)
	for i := range n {
		md[fmt.Sprintf("x-k%d", i)] = strings.Repeat("v", valueLen)
	}
	return md
}

// TestPendingBytesLimit: while calls hold max_pending_bytes of requests, a
// new call that does not fit fails at once with RESOURCE_EXHAUSTED (a call
// that waited for room would end with its deadline instead), one that fits
// goes; once the held calls return, their bytes are free again.
func TestPendingBytesLimit(t *testing.T) {
	t.Parallel()
	const (
		maxMsg     = 16 << 10
		maxPending = 40 << 10
	)
	c, tg := limitsDeployment(t, memoryBus(t), vclient.Config{ClientID: "pending-bytes", MaxMessageBytes: maxMsg, MaxPendingBytes: maxPending})
	ctx := limitsContext(t)
	big := func(tag string) []byte { return pingBytes(t, "hold"+tag+strings.Repeat("p", maxMsg-64)) }

	// Two held calls of about 16 KiB: 32 KiB of 40 pending.
	errc := make(chan error, 2)
	for i := range 2 {
		go func() {
			_, err := c.Call(ctx, "demo", "/demo.Demo/Ping", big(strconv.Itoa(i)), nil)
			errc <- err
		}()
		<-tg.arrived
	}
	n := c.PendingBytes()
	if n < 2*(maxMsg-64) || n > maxPending {
		t.Fatalf("PendingBytes with two 16 KiB calls held = %d", n)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c.Collector())
	if got := gathered(t, reg, "vrpc_client_pending_bytes", map[string]string{"client_id": "pending-bytes"}); got != float64(n) {
		t.Errorf("vrpc_client_pending_bytes = %v, want %d", got, n)
	}
	// Bounded only so that a client that queued the call instead fails
	// this test soon; the assertion is on the code, not the time.
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := c.Call(short, "demo", "/demo.Demo/Ping", big("3"), nil); status.Code(err) != codes.ResourceExhausted ||
		!strings.Contains(status.Convert(err).Message(), "max_pending_bytes") {
		t.Fatalf("a third 16 KiB call over max_pending_bytes: got %v, want RESOURCE_EXHAUSTED naming max_pending_bytes", err)
	}
	if got := tg.calls.Load(); got != 2 {
		t.Errorf("the target saw %d calls, want the 2 held ones", got)
	}
	// A small call still fits.
	if _, err := c.Call(ctx, "demo", "/demo.Demo/Ping", pingBytes(t, "small"), nil); err != nil {
		t.Fatalf("a small call under max_pending_bytes: %v", err)
	}
	tg.release <- struct{}{}
	tg.release <- struct{}{}
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatalf("held call: %v", err)
		}
	}
	if n := c.PendingBytes(); n != 0 {
		t.Fatalf("PendingBytes after the held calls returned = %d, want 0", n)
	}
	go func() { <-tg.arrived; tg.release <- struct{}{} }()
	if _, err := c.Call(ctx, "demo", "/demo.Demo/Ping", big("4"), nil); err != nil {
		t.Fatalf("a 16 KiB call once the room is free: %v", err)
	}
}

// TestPendingLimit: while max_pending calls wait for their replies, one
// more fails at once with RESOURCE_EXHAUSTED naming the setting and its
// value (a call that waited for room would end with its deadline instead),
// and never reaches the target; once a held call returns, there is room
// again. (faults.TestLongOutage shows the same for calls waiting for a bus
// that is down.)
func TestPendingLimit(t *testing.T) {
	t.Parallel()
	const held = 3
	c, tg := limitsDeployment(t, memoryBus(t), vclient.Config{ClientID: "pending-count", MaxPending: held})
	ctx := limitsContext(t)
	errc := make(chan error, held)
	for i := range held {
		go func() {
			_, err := c.Call(ctx, "demo", "/demo.Demo/Ping", pingBytes(t, "hold"+strconv.Itoa(i)), nil)
			errc <- err
		}()
		<-tg.arrived
	}
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := c.Call(short, "demo", "/demo.Demo/Ping", pingBytes(t, "over"), nil)
	if msg := status.Convert(err).Message(); status.Code(err) != codes.ResourceExhausted ||
		!strings.Contains(msg, "max_pending 3") || !strings.Contains(msg, "0 waiting for the bus to take their request, 3 for their replies") {
		t.Fatalf("a call over max_pending: got %v, want RESOURCE_EXHAUSTED naming max_pending 3 and what the calls wait for", err)
	}
	if got := tg.calls.Load(); got != held {
		t.Errorf("the target saw %d calls, want the %d held ones", got, held)
	}
	tg.release <- struct{}{}
	if err := <-errc; err != nil {
		t.Fatalf("held call: %v", err)
	}
	if _, err := c.Call(ctx, "demo", "/demo.Demo/Ping", pingBytes(t, "again"), nil); err != nil {
		t.Fatalf("a call once a held one returned: %v", err)
	}
	for range held - 1 {
		tg.release <- struct{}{}
		if err := <-errc; err != nil {
			t.Fatalf("held call: %v", err)
		}
	}
}

// TestReplyLimit: a reply over the client's max_message_bytes fails its
// call with RESOURCE_EXHAUSTED (after the target ran: the reply is
// refused, not the request) and leaves the client working, on the memory
// bus and on Kafka.
func TestReplyLimit(t *testing.T) {
	t.Parallel()
	const maxMsg = 64 << 10
	for _, bc := range []struct {
		name string
		bus  func(*testing.T) rpcbus.Config
	}{
		{"memory", memoryBus},
		{"kafka", func(t *testing.T) rpcbus.Config { return vtest.StartKafka(t) }},
	} {
		t.Run(bc.name, func(t *testing.T) {
			t.Parallel()
			c, tg := limitsDeployment(t, bc.bus(t), vclient.Config{ClientID: "reply-limit", MaxMessageBytes: maxMsg})
			ctx := limitsContext(t)
			for _, tc := range []struct {
				size int // of the reply's message field
				want codes.Code
			}{
				{maxMsg - 16, codes.OK}, // its protobuf encoding is just under the max
				{maxMsg + 1, codes.ResourceExhausted},
				{4 * maxMsg, codes.ResourceExhausted},
				{16, codes.OK},
			} {
				before := tg.calls.Load()
				resp, err := c.Call(ctx, "demo", "/demo.Demo/Ping", pingBytes(t, fmt.Sprintf("reply:%d", tc.size)), nil)
				if got := status.Code(err); got != tc.want {
					t.Fatalf("reply of %d bytes: got %v, want %v", tc.size, err, tc.want)
				}
				if tg.calls.Load() != before+1 {
					t.Errorf("reply of %d bytes: the target did not run the call", tc.size)
				}
				if tc.want == codes.ResourceExhausted {
					if resp != nil && len(resp.Payload) > 0 {
						t.Errorf("reply of %d bytes: refused, yet %d bytes of payload came back", tc.size, len(resp.Payload))
					}
					if !strings.Contains(status.Convert(err).Message(), "max_message_bytes") {
						t.Errorf("reply of %d bytes: the error does not name max_message_bytes: %v", tc.size, err)
					}
				}
			}
		})
	}
}

// TestLimitsConfig: the new keys take their defaults, and a bad value is
// refused naming its key and the fix.
func TestLimitsConfig(t *testing.T) {
	t.Parallel()
	var cfg vclient.Config
	cfg.SetDefaults()
	if cfg.MaxMetadataBytes != 64<<10 || cfg.MaxPendingBytes != 256<<20 {
		t.Errorf("defaults: max_metadata_bytes %d, max_pending_bytes %d; want 65536, 268435456", cfg.MaxMetadataBytes, cfg.MaxPendingBytes)
	}
	for _, tc := range []struct {
		name string
		cfg  vclient.Config
		want []string // in the error; none: valid
	}{
		{"defaults", vclient.Config{}, nil},
		{"negative metadata", vclient.Config{MaxMetadataBytes: -1}, []string{"max_metadata_bytes -1", "positive"}},
		{"negative pending", vclient.Config{MaxPendingBytes: -1}, []string{"max_pending_bytes -1", "positive"}},
		{"pending below message", vclient.Config{MaxMessageBytes: 8 << 20, MaxPendingBytes: 1 << 20},
			[]string{"max_pending_bytes 1048576", "max_message_bytes 8388608", "at least 8388608"}},
		{"pending below the default message", vclient.Config{MaxPendingBytes: 1 << 20}, []string{"max_pending_bytes 1048576"}},
		{"pending equal to message", vclient.Config{MaxMessageBytes: 1 << 20, MaxPendingBytes: 1 << 20}, nil},
	} {
		err := tc.cfg.Validate()
		if len(tc.want) == 0 {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: valid, want an error with %q", tc.name, tc.want)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not say %q", tc.name, err, w)
			}
		}
	}
}

// TestPendingCallDropsPayload: once the bus has a request, the client
// keeps no reference to its payload while the call waits, so that a
// caller that lets go of it (the gateway does) frees it: pending calls
// cost their metadata, not their payload.
func TestPendingCallDropsPayload(t *testing.T) {
	t.Parallel()
	c, tg := limitsDeployment(t, memoryBus(t), vclient.Config{ClientID: "drops-payload"})
	ctx := limitsContext(t)
	freed := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		b := pingBytes(t, "hold"+strings.Repeat("p", 64<<10))
		runtime.AddCleanup(&b[0], func(ch chan struct{}) { close(ch) }, freed)
		_, err := c.Invoke(ctx, "demo", "/demo.Demo/Ping", b, nil)
		errc <- err
	}()
	<-tg.arrived
	for i := 0; ; i++ {
		runtime.GC()
		select {
		case <-freed:
		case <-time.After(10 * time.Millisecond):
			if i < 100 {
				continue
			}
			t.Error("the payload of a pending call is still referenced after 100 GCs")
		}
		break
	}
	tg.release <- struct{}{}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
