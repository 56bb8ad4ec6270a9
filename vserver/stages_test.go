package vserver

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/nextpkg/vrpc/codec"
	"github.com/nextpkg/vrpc/rpcbus"
	_ "github.com/nextpkg/vrpc/rpcbus/memory" // rpc_bus.type memory
	"github.com/nextpkg/vrpc/vconfig"
	"github.com/nextpkg/vrpc/vrpcpb"
)

// stageServer is a server that is built but never started: its stages are
// called one at a time, on a memory bus, with a target that is never
// dialled.
func stageServer(t *testing.T) *Server {
	t.Helper()
	s, err := NewServer(&vconfig.Config{
		Name:           "stages",
		Port:           -1,
		RpcBus:         rpcbus.Config{Type: "memory"},
		Targets:        map[string]vconfig.Target{"demo": {Endpoint: "127.0.0.1:1", Timeout: "10s"}},
		MaxMessageSize: 16,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// delivery is a delivery from topic vrpc.requests.demo of req's envelope.
func delivery(t *testing.T, req *vrpcpb.Request) *rpcbus.Delivery {
	t.Helper()
	b, err := codec.EncodeRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	return rpcbus.NewDelivery(rpcbus.Message{Topic: "vrpc.requests.demo", Value: b}, nil)
}

func request(id string) *vrpcpb.Request {
	return &vrpcpb.Request{Id: id, ClientId: "c", Target: "demo", Method: "/demo.Demo/Ping", ReplyTo: "vrpc.responses.c",
		Payload: []byte("hi"), DeadlineUnixNano: time.Now().Add(time.Minute).UnixNano()}
}

func wantStatus(t *testing.T, j *job, code codes.Code, text string) {
	t.Helper()
	if j.res == nil || j.res.Status.Code() != code || !strings.Contains(j.res.Status.Message(), text) {
		t.Fatalf("reply %+v, want %v saying %q", j.res, code, text)
	}
}

func TestStageDecode(t *testing.T) {
	s := stageServer(t)

	j := &job{d: delivery(t, request("ok")), received: time.Now()}
	if !s.decode(j) || j.req.GetId() != "ok" || j.deadline.IsZero() || j.res != nil {
		t.Fatalf("a good envelope: job %+v", j)
	}

	j = &job{d: rpcbus.NewDelivery(rpcbus.Message{Topic: "vrpc.requests.demo", Value: []byte("\xff not an envelope")}, nil), received: time.Now()}
	if s.decode(j) || j.nack || j.res != nil || s.Stats().DeadLetters != 1 {
		t.Fatalf("garbage: passed on, or not set aside (dead letters %d), or answered: job %+v", s.Stats().DeadLetters, j)
	}

	big := request("big")
	big.Payload = make([]byte, 17)
	j = &job{d: delivery(t, big), received: time.Now()}
	if s.decode(j) || s.Stats().DeadLetters != 2 {
		t.Fatalf("a payload over max_message_size passed on (dead letters %d)", s.Stats().DeadLetters)
	}
	wantStatus(t, j, codes.InvalidArgument, "max_message_size of 16")
}

func TestStageCheckExpiry(t *testing.T) {
	s := stageServer(t)
	now := time.Now()
	for _, tc := range []struct {
		name     string
		deadline time.Time
		pass     bool
	}{
		{"none", time.Time{}, true},
		{"ahead", now.Add(time.Second), true},
		{"passed", now.Add(-time.Second), false},
		{"at arrival", now, false},
	} {
		j := &job{received: now, deadline: tc.deadline}
		if got := s.checkExpiry(j); got != tc.pass || j.res != nil {
			t.Errorf("%s: passed on %v, want %v; reply %+v", tc.name, got, tc.pass, j.res)
		}
	}
	if got := s.Stats().Expired; got != 2 {
		t.Errorf("Expired = %d, want 2", got)
	}
}

func TestStageRoute(t *testing.T) {
	s := stageServer(t)
	now := time.Now()

	j := &job{req: &vrpcpb.Request{Target: "nope"}, received: now}
	if s.route(j) {
		t.Fatal("an unknown target passed on")
	}
	wantStatus(t, j, codes.Unimplemented, `no target "nope"`)

	for _, tc := range []struct {
		name     string
		deadline time.Time
		want     time.Time
	}{
		{"caller's deadline first", now.Add(time.Second), now.Add(time.Second)},
		{"target's timeout first", now.Add(time.Hour), now.Add(10 * time.Second)},
		{"no caller deadline", time.Time{}, now.Add(10 * time.Second)},
	} {
		j := &job{req: &vrpcpb.Request{Target: "demo"}, received: now, deadline: tc.deadline}
		if !s.route(j) {
			t.Fatalf("%s: target demo did not pass on: %+v", tc.name, j.res)
		}
		if d, _ := j.ctx.Deadline(); !d.Equal(tc.want) {
			t.Errorf("%s: call deadline %v, want %v", tc.name, d, tc.want)
		}
		j.cancel()
	}
}

func TestStageClaim(t *testing.T) {
	s := stageServer(t)
	first := &job{req: request("r1")}
	if !s.claim(first) || first.key == "" {
		t.Fatalf("a new request: passed on %v with key %q", false, first.key)
	}
	again := &job{req: request("r1")}
	if s.claim(again) || again.res != nil || s.Stats().Duplicates != 1 {
		t.Fatalf("a request being served, delivered again, passed on or was answered (duplicates %d)", s.Stats().Duplicates)
	}
	// Another reply address is another request, however alike its ids.
	other := request("r1")
	other.ReplyTo = "vrpc.responses.someone-else"
	if j := (&job{req: other}); !s.claim(j) || j.key == first.key {
		t.Fatalf("a copy of r1 with another reply address was taken for r1")
	}
}

func TestStageResolve(t *testing.T) {
	s := stageServer(t)
	req := request("r")
	req.Method = "demo.Demo/Ping" // full, without the leading slash
	j := &job{req: req, tgt: s.targets["demo"], ctx: context.Background(), received: time.Now()}
	if !s.resolve(j) || j.call.Method != "/demo.Demo/Ping" || string(j.call.Payload) != "hi" || j.desc != nil {
		t.Fatalf("a protobuf call by full name should pass through without the schema: %+v, %+v", j.call, j.res)
	}

	req = request("bad-encoding")
	req.Encoding = vrpcpb.Encoding(99)
	j = &job{req: req, tgt: s.targets["demo"], ctx: context.Background()}
	if s.resolve(j) {
		t.Fatal("an unknown payload encoding passed on")
	}
	wantStatus(t, j, codes.InvalidArgument, "encoding 99")
}

func TestStageHandle(t *testing.T) {
	s := stageServer(t)
	var seen *Call
	s.handler = func(_ context.Context, call *Call) *Result {
		seen = call
		return &Result{Payload: []byte("reply")}
	}
	call := &Call{ID: "r", Target: "demo", Method: "/demo.Demo/Ping"}
	j := &job{req: request("r"), call: call, ctx: context.Background()}
	s.handle(j)
	if seen != call || j.res == nil || string(j.res.Payload) != "reply" {
		t.Fatalf("handle: the chain saw %+v and the job's reply is %+v", seen, j.res)
	}
}
