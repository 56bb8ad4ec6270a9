package vclient_test

import (
	"context"
	"log/slog"
	"net"
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
)

// heldDemo answers Ping at once, except "hold", which it holds until the
// test releases it.
type heldDemo struct {
	demo.UnimplementedDemoServer
	arrived, release chan struct{}
}

func (h *heldDemo) Ping(_ context.Context, r *demo.Request) (*demo.Response, error) {
	switch r.Message {
	case "":
		return nil, status.Error(codes.InvalidArgument, "message must not be empty")
	case "hold":
		h.arrived <- struct{}{}
		<-h.release
	}
	return &demo.Response{Message: r.Message}, nil
}

// TestClientMetrics makes a known sequence of calls and reads the client's
// collector: calls by code, the reply latency histogram, timeouts, the
// pending gauge, and a reply that came after its call had given up.
func TestClientMetrics(t *testing.T) {
	slog.SetDefault(slog.New(slog.DiscardHandler))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	held := &heldDemo{arrived: make(chan struct{}, 1), release: make(chan struct{})}
	demo.RegisterDemoServer(gs, held)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)

	busCfg := vtest.StartKafka(t)
	vtest.StartServer(t, vtest.ServerConfig(busCfg, map[string]vrpc.Target{"demo": {Endpoint: lis.Addr().String()}}))
	c := vtest.NewClient(t, busCfg, "metered")
	reg := prometheus.NewRegistry()
	reg.MustRegister(c.Collector())

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	call := func(ctx context.Context, target, msg string) error {
		b, _ := proto.Marshal(&demo.Request{Message: msg})
		_, err := c.Call(ctx, target, "/demo.Demo/Ping", b, nil)
		return err
	}
	for range 2 {
		if err := call(ctx, "demo", "hi"); err != nil {
			t.Fatal(err)
		}
	}
	if err := call(ctx, "demo", ""); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("empty: %v", err)
	}
	// A target whose topic exists but that no server serves: the call
	// times out.
	bus, err := rpcbus.New(busCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	if err := bus.(rpcbus.TopicCreator).CreateTopics(ctx, "vrpc.requests.idle"); err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelShort()
	if err := call(short, "idle", "hi"); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("idle: %v", err)
	}
	// A call given up while the target works on it: the reply comes to
	// nobody.
	gaveUp, giveUp := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- call(gaveUp, "demo", "hold") }()
	<-held.arrived
	giveUp()
	if err := <-errc; status.Code(err) != codes.Canceled {
		t.Fatalf("hold: %v", err)
	}
	close(held.release)
	for orphans(t, reg) != 1 {
		select {
		case <-ctx.Done():
			t.Fatal("the late reply was never counted")
		case <-time.After(20 * time.Millisecond):
		}
	}

	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"vrpc_client_calls_total", map[string]string{"target": "demo", "code": "OK"}, 2},
		{"vrpc_client_calls_total", map[string]string{"target": "demo", "code": "InvalidArgument"}, 1},
		{"vrpc_client_calls_total", map[string]string{"target": "demo", "code": "Canceled"}, 1},
		{"vrpc_client_calls_total", map[string]string{"target": "idle", "code": "DeadlineExceeded"}, 1},
		{"vrpc_client_timeouts_total", map[string]string{"target": "idle"}, 1},
		{"vrpc_client_timeouts_total", map[string]string{"target": "demo"}, -1},
		{"vrpc_client_call_duration_seconds", map[string]string{"target": "demo"}, 4},
		{"vrpc_client_call_duration_seconds", map[string]string{"target": "idle"}, 1},
		{"vrpc_client_pending_calls", nil, 0},
		{"vrpc_client_pending_bytes", nil, 0},
		{"vrpc_client_orphan_replies_total", nil, 1},
	} {
		labels := map[string]string{"client_id": "metered"}
		for k, v := range tc.labels {
			labels[k] = v
		}
		if got := gathered(t, reg, tc.name, labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, labels, got, tc.want)
		}
	}
}

// gathered is the value of a counter or gauge, or a histogram's count,
// with exactly labels; -1 when absent.
func gathered(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.Metric {
			if len(m.Label) != len(labels) {
				continue
			}
			for _, l := range m.Label {
				if labels[l.GetName()] != l.GetValue() {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return -1
}

func orphans(t *testing.T, reg *prometheus.Registry) float64 {
	return gathered(t, reg, "vrpc_client_orphan_replies_total", map[string]string{"client_id": "metered"})
}
