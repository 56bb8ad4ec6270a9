package vserver_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/internal/vtest"
	"github.com/nextpkg/vrpc/vclient"
)

// flakyDemo fails each distinct message with the code the message names
// ("UNAVAILABLE:2" fails twice with UNAVAILABLE), then succeeds, counting
// the attempts.
type flakyDemo struct {
	demo.UnimplementedDemoServer
	mu       sync.Mutex
	attempts map[string]int
}

func (f *flakyDemo) Ping(_ context.Context, r *demo.Request) (*demo.Response, error) {
	f.mu.Lock()
	f.attempts[r.Message]++
	n := f.attempts[r.Message]
	f.mu.Unlock()
	code, times, _ := strings.Cut(r.Message, ":")
	if n <= int(times[0]-'0') {
		switch code {
		case "UNAVAILABLE":
			return nil, status.Error(codes.Unavailable, "not now")
		case "ABORTED":
			return nil, status.Error(codes.Aborted, "conflict")
		}
	}
	return &demo.Response{Message: r.Message}, nil
}

func (f *flakyDemo) count(msg string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts[msg]
}

func TestTargetRetries(t *testing.T) {
	t.Parallel()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fd := &flakyDemo{attempts: map[string]int{}}
	srv := grpc.NewServer()
	demo.RegisterDemoServer(srv, fd)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	addr := lis.Addr().String()

	busCfg := startKafka(t)
	cfg := vtest.ServerConfig(busCfg, map[string]vrpc.Target{
		"plain":      {Endpoint: addr},
		"retry":      {Endpoint: addr, Settings: map[string]any{"max_retries": 3}},
		"idempotent": {Endpoint: addr, Settings: map[string]any{"max_retries": 3, "idempotent_methods": []any{"demo.Demo/Ping"}}},
	})
	startServer(t, cfg)
	c := newClient(t, busCfg, "retry-caller")
	ctx := testContext(t)
	call := func(target, msg string) error {
		_, err := demo.NewDemoClient(vclient.NewConn(c, target)).Ping(ctx, &demo.Request{Message: msg})
		return err
	}

	cases := []struct {
		target, msg string
		want        codes.Code
		attempts    int
	}{
		{"plain", "UNAVAILABLE:1 plain", codes.Unavailable, 1},
		{"retry", "UNAVAILABLE:2 retry", codes.OK, 3},
		{"retry", "ABORTED:1 retry", codes.Aborted, 1}, // not idempotent: may have run
		{"idempotent", "ABORTED:1 idempotent", codes.OK, 2},
		{"retry", "UNAVAILABLE:5 exhausted", codes.Unavailable, 4},
	}
	for _, tc := range cases {
		if got := status.Code(call(tc.target, tc.msg)); got != tc.want {
			t.Errorf("%s %q: got %v, want %v", tc.target, tc.msg, got, tc.want)
		}
		if got := fd.count(tc.msg); got != tc.attempts {
			t.Errorf("%s %q: target saw %d attempts, want %d", tc.target, tc.msg, got, tc.attempts)
		}
	}
}
