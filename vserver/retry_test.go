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

	// The target answers each of these: it got the request and may have
	// run it, so only an idempotent method is tried again.
	cases := []struct {
		target, msg string
		want        codes.Code
		attempts    int
	}{
		{"plain", "UNAVAILABLE:1 plain", codes.Unavailable, 1},
		{"retry", "UNAVAILABLE:2 retry", codes.Unavailable, 1},
		{"retry", "ABORTED:1 retry", codes.Aborted, 1},
		{"idempotent", "UNAVAILABLE:2 idempotent", codes.OK, 3},
		{"idempotent", "ABORTED:1 idempotent", codes.OK, 2},
		{"idempotent", "UNAVAILABLE:5 exhausted", codes.Unavailable, 4},
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

// droppingListener closes the first drop connections it accepts, before
// any byte is read: a target that is not up yet, as a client sees it.
type droppingListener struct {
	net.Listener
	mu   sync.Mutex
	drop int
}

func (l *droppingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		dropped := l.drop > 0
		if dropped {
			l.drop--
		}
		l.mu.Unlock()
		if !dropped {
			return c, nil
		}
		_ = c.Close()
	}
}

// TestRetryNotReached: a call that could not be sent to its target (the
// connection failed) is tried again with max_retries, and runs once; with
// no retries it fails with UNAVAILABLE without reaching the target.
func TestRetryNotReached(t *testing.T) {
	t.Parallel()
	busCfg := startKafka(t)
	c := newClient(t, busCfg, "retry-caller")
	for _, tc := range []struct {
		name     string
		retries  int
		drop     int // connections the target refuses before it takes one
		want     codes.Code
		attempts int
	}{
		// Every connection dropped: however late the call comes (gRPC
		// redials after 1s), it finds none to go on.
		{"no retries", 0, 1 << 20, codes.Unavailable, 0},
		{"retries", 3, 1, codes.OK, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			fd := &flakyDemo{attempts: map[string]int{}}
			srv := grpc.NewServer()
			demo.RegisterDemoServer(srv, fd)
			go func() { _ = srv.Serve(&droppingListener{Listener: lis, drop: tc.drop}) }()
			t.Cleanup(srv.Stop)
			target := "late-" + strings.ReplaceAll(tc.name, " ", "-")
			cfg := vtest.ServerConfig(busCfg, map[string]vrpc.Target{
				target: {Endpoint: lis.Addr().String(), Settings: map[string]any{"max_retries": tc.retries}},
			})
			cfg.Name = target
			startServer(t, cfg)
			_, err = demo.NewDemoClient(vclient.NewConn(c, target)).Ping(testContext(t), &demo.Request{Message: "OK:0"})
			if got := status.Code(err); got != tc.want {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if got := fd.count("OK:0"); got != tc.attempts {
				t.Errorf("the target ran the call %d times, want %d", got, tc.attempts)
			}
		})
	}
}
