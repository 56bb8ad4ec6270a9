package faults

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/nextpkg/vrpc/example/demo"
)

// ServerHeader is the request header a Target reads to learn which vRPC
// server forwarded a call. The fault tests' servers set it with a plugin;
// calls without it are counted under "".
const ServerHeader = "x-faults-server"

// Target is the demo gRPC service counting its executions: per request
// message, per forwarding server, and at once. Its Ping echoes the message,
// after Delay if set. The zero value is ready to use.
type Target struct {
	demo.UnimplementedDemoServer
	// Name is reported in every reply's served_by.
	Name string
	// Delay is how long each execution takes (a slow target); it ends
	// early with the call's context.
	Delay time.Duration

	mu        sync.Mutex
	execs     map[string]int      // by message
	by        map[string][]string // message -> servers that executed it
	served    map[string]int      // executions by server
	runningBy map[string]int      // executions running now, by server

	total   atomic.Int64
	running atomic.Int64
	peak    atomic.Int64
}

// Ping counts the execution, waits Delay and echoes the message.
func (t *Target) Ping(ctx context.Context, req *demo.Request) (*demo.Response, error) {
	server := ""
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(ServerHeader); len(v) > 0 {
			server = v[0]
		}
	}
	t.mu.Lock()
	if t.execs == nil {
		t.execs, t.by, t.served, t.runningBy = map[string]int{}, map[string][]string{}, map[string]int{}, map[string]int{}
	}
	t.execs[req.GetMessage()]++
	if server != "" { // kept only when known: a soak makes millions of calls
		t.by[req.GetMessage()] = append(t.by[req.GetMessage()], server)
	}
	t.served[server]++
	t.runningBy[server]++
	t.mu.Unlock()
	t.total.Add(1)
	defer func() {
		t.mu.Lock()
		t.runningBy[server]--
		t.mu.Unlock()
	}()

	n := t.running.Add(1)
	defer t.running.Add(-1)
	for p := t.peak.Load(); n > p && !t.peak.CompareAndSwap(p, n); p = t.peak.Load() {
	}
	if t.Delay > 0 {
		timer := time.NewTimer(t.Delay)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	if req.GetMessage() == "" {
		return nil, status.Error(codes.InvalidArgument, "message must not be empty")
	}
	return &demo.Response{Message: req.GetMessage(), ServedBy: t.Name}, nil
}

// Executions returns how many times the target executed msg.
func (t *Target) Executions(msg string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.execs[msg]
}

// ExecutedBy returns the servers (their ServerHeader) that forwarded each
// execution of msg, in order; executions without the header are left out.
func (t *Target) ExecutedBy(msg string) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.by[msg]...)
}

// Served returns how many executions each server forwarded.
func (t *Target) Served() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := make(map[string]int, len(t.served))
	for k, v := range t.served {
		m[k] = v
	}
	return m
}

// RunningBy returns how many executions forwarded by server are running
// now.
func (t *Target) RunningBy(server string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.runningBy[server]
}

// Total returns the number of executions.
func (t *Target) Total() int64 { return t.total.Load() }

// Peak returns the most executions that ran at once.
func (t *Target) Peak() int64 { return t.peak.Load() }

// Serving is a Target served on a listener.
type Serving struct {
	srv  *grpc.Server
	addr string
	done chan struct{}
}

// Serve serves t on lis until Stop.
func (t *Target) Serve(lis net.Listener) *Serving {
	srv := grpc.NewServer()
	demo.RegisterDemoServer(srv, t)
	s := &Serving{srv: srv, addr: lis.Addr().String(), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		_ = srv.Serve(lis)
	}()
	return s
}

// Listen serves t on addr ("127.0.0.1:0" for any free port).
func (t *Target) Listen(addr string) (*Serving, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return t.Serve(lis), nil
}

// Addr is the address the target listens on.
func (s *Serving) Addr() string { return s.addr }

// Stop closes the listener and every connection at once (calls running are
// cut off, as when the target's process dies) and waits for Serve to end.
func (s *Serving) Stop() {
	s.srv.Stop()
	<-s.done
}
