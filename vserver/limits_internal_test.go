package vserver

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc/codes"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vconfig"
	"github.com/nextpkg/vrpc/vrpcpb"
)

func TestStageDecodeLimits(t *testing.T) {
	s := stageServer(t)
	long := strings.Repeat("x", 2<<10) // over max_id_bytes (256)
	tests := []struct {
		name   string
		edit   func(*vrpcpb.Request)
		limit  string
		answer codes.Code // OK: set aside, not answered
		says   string
	}{
		{"id", func(r *vrpcpb.Request) { r.Id = long }, limitIDBytes, codes.OK, ""},
		{"reply address", func(r *vrpcpb.Request) { r.ReplyTo = long }, limitIDBytes, codes.OK, ""},
		{"client id", func(r *vrpcpb.Request) { r.ClientId = long }, limitIDBytes, codes.InvalidArgument, "client_id of 2048 bytes is over the server's max_id_bytes of 256"},
		{"target", func(r *vrpcpb.Request) { r.Target = long }, limitIDBytes, codes.InvalidArgument, "target of 2048 bytes"},
		{"method", func(r *vrpcpb.Request) { r.Method = long }, limitIDBytes, codes.InvalidArgument, "method of 2048 bytes"},
		{"metadata", func(r *vrpcpb.Request) {
			r.Metadata = []*vrpcpb.Metadata{{Key: "big", Values: []string{strings.Repeat("v", 65<<10)}}}
		}, limitMetadataBytes, codes.ResourceExhausted, "over the server's max_metadata_bytes of 65536"},
		{"trace context", func(r *vrpcpb.Request) {
			r.TraceContext = map[string]string{"tracestate": strings.Repeat("v", 65<<10)}
		}, limitMetadataBytes, codes.ResourceExhausted, "max_metadata_bytes"},
	}
	for i, tt := range tests {
		req := request("limits")
		tt.edit(req)
		j := &job{d: delivery(t, req), received: time.Now()}
		if s.decode(j) {
			t.Errorf("%s over its limit passed on", tt.name)
			continue
		}
		if got := s.Stats().DeadLetters; got != uint64(i+1) {
			t.Errorf("%s: %d dead letters, want %d", tt.name, got, i+1)
		}
		if tt.answer == codes.OK {
			if j.res != nil {
				t.Errorf("%s: answered %v; a reply must not carry or go to a field over max_id_bytes", tt.name, j.res.Status)
			}
		} else {
			wantStatus(t, j, tt.answer, tt.says)
		}
	}
	if n := counterValue(t, s.limits.refused.WithLabelValues(limitIDBytes)); n != 5 {
		t.Errorf("refused{limit=max_id_bytes} = %v, want 5", n)
	}
	if n := counterValue(t, s.limits.refused.WithLabelValues(limitMetadataBytes)); n != 2 {
		t.Errorf("refused{limit=max_metadata_bytes} = %v, want 2", n)
	}
	// At the limits, a request passes.
	req := request(strings.Repeat("i", 256))
	req.Metadata = []*vrpcpb.Metadata{{Key: "k", Values: []string{strings.Repeat("v", 60<<10)}}}
	if j := (&job{d: delivery(t, req), received: time.Now()}); !s.decode(j) {
		t.Errorf("a request within the limits was refused: %+v", j.res)
	}
}

func TestStageAdmitClient(t *testing.T) {
	s, err := NewServer(&vconfig.Config{
		Name: "admit", Port: -1, RpcBus: rpcbus.Config{Type: "memory"},
		Targets:              map[string]vconfig.Target{"demo": {Endpoint: "127.0.0.1:1"}},
		MaxInFlightPerClient: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	admit := func(client string) *job {
		req := request("r")
		req.ClientId = client
		j := &job{req: req}
		s.admitClient(j)
		return j
	}
	a1, a2 := admit("a"), admit("a")
	if !a1.slot || !a2.slot {
		t.Fatal("client a's first two requests were not admitted")
	}
	a3 := admit("a")
	if a3.slot {
		t.Fatal("client a's third request was admitted over max_in_flight_per_client 2")
	}
	wantStatus(t, a3, codes.ResourceExhausted, "max_in_flight_per_client (2)")
	if b := admit("b"); !b.slot {
		t.Fatal("client b was refused for client a's requests")
	}
	s.clients.give("a")
	if a4 := admit("a"); !a4.slot {
		t.Fatal("client a was refused after one of its requests finished")
	}
	if n := counterValue(t, s.limits.refused.WithLabelValues(limitPerClient)); n != 1 {
		t.Errorf("refused{limit=max_in_flight_per_client} = %v, want 1", n)
	}
	s.clients.give("a")
	s.clients.give("a")
	s.clients.give("b")
	if len(s.clients.n) != 0 {
		t.Errorf("clients with nothing in flight are still kept: %v", s.clients.n)
	}
}

func TestByteGate(t *testing.T) {
	g := newByteGate(100)
	never := make(chan struct{})
	g.take(60, never)
	took := make(chan struct{})
	go func() {
		g.take(60, never) // 120 > 100: waits
		close(took)
	}()
	for g.waiting.Load() == 0 { // until it waits
		time.Sleep(time.Millisecond)
	}
	select {
	case <-took:
		t.Fatal("took 60 bytes with 60 of 100 in use")
	default:
	}
	g.give(60)
	<-took
	if got := g.inUse(); got != 60 {
		t.Fatalf("in use %d, want 60", got)
	}
	g.give(60)

	// Alone, a request as large as the whole limit is served.
	g.take(100, never)
	g.give(100)

	// Stopping: it takes without waiting, so that a drain is not held.
	g.take(90, never)
	stop := make(chan struct{})
	close(stop)
	g.take(90, stop)
	if got := g.inUse(); got != 180 {
		t.Fatalf("in use %d after a take while stopping, want 180", got)
	}

	// Many takers, one at a time over the limit: all get through, and the
	// gate ends empty.
	g = newByteGate(100)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			g.take(70, never)
			g.give(70)
		})
	}
	wg.Wait()
	if got := g.inUse(); got != 0 {
		t.Fatalf("in use %d after every taker gave back, want 0", got)
	}
}

func TestRefuseOversize(t *testing.T) {
	s := stageServer(t) // max_message_size 16
	req := request("too-big")
	req.Payload = make([]byte, s.maxEnvelope())
	j := &job{d: delivery(t, req), received: time.Now()}
	s.refuseOversize(j)
	if j.nack || s.Stats().DeadLetters != 1 {
		t.Fatalf("not set aside: nack %v, dead letters %d", j.nack, s.Stats().DeadLetters)
	}
	wantStatus(t, j, codes.ResourceExhausted, "over the server's max_message_size of 16")
	if j.req.Id != "too-big" || j.req.ReplyTo != "vrpc.responses.c" {
		t.Errorf("answered %+v, want the request's id and reply address", j.req)
	}
	if n := counterValue(t, s.limits.refused.WithLabelValues(limitMessageSize)); n != 1 {
		t.Errorf("refused{limit=max_message_size} = %v, want 1", n)
	}
}

func TestProgressCheck(t *testing.T) {
	s := stageServer(t) // max_in_flight 1024, reply_timeout 5s, target timeout 10s: window 15s
	now := time.Now()
	s.progress.done(now.Add(-time.Hour))
	if c := s.progressCheck(now); c.err != nil {
		t.Errorf("idle, not saturated: %v", c.err)
	}
	s.busy.Store(1000)
	s.unacked.Store(24)
	if c := s.progressCheck(now); c.err == nil || !strings.Contains(c.err.Error(), "stalled") {
		t.Errorf("every slot taken and nothing done for an hour: %v", c.err)
	}
	s.progress.done(now.Add(-14 * time.Second))
	if c := s.progressCheck(now); c.err != nil {
		t.Errorf("saturated, last done within the longest a request may take: %v", c.err)
	}
	s.busy.Store(0)
	s.unacked.Store(0)
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestRefuseOverInFlightBytes: a record within max_message_size and the
// other limits but over max_in_flight_bytes on its own is refused under
// that limit's name, not served.
func TestRefuseOverInFlightBytes(t *testing.T) {
	s, err := NewServer(&vconfig.Config{
		Name: "bytes", Port: -1, RpcBus: rpcbus.Config{Type: "memory"},
		Targets:          map[string]vconfig.Target{"demo": {Endpoint: "127.0.0.1:1"}},
		MaxMessageSize:   64 << 10,
		MaxInFlightBytes: 64 << 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	req := request("over-in-flight-bytes")
	req.Payload = make([]byte, 60<<10)
	req.Metadata = []*vrpcpb.Metadata{{Key: "k", Values: []string{strings.Repeat("v", 16<<10)}}}
	d := delivery(t, req)
	if int64(len(d.Value)) <= s.gate.max || len(d.Value) > s.maxEnvelope() {
		t.Fatalf("a record of %d bytes does not test max_in_flight_bytes %d alone", len(d.Value), s.gate.max)
	}
	j := &job{d: d, received: time.Now()}
	s.refuseOversize(j)
	wantStatus(t, j, codes.ResourceExhausted, "max_in_flight_bytes of 65536")
	if n := counterValue(t, s.limits.refused.WithLabelValues(limitInFlightBytes)); n != 1 {
		t.Errorf("refused{limit=max_in_flight_bytes} = %v, want 1", n)
	}
}
