package vserver_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/vserver"
)

// TestNewGroupMaxAge: a server group under a new name does not run the
// requests another group served before max_request_age ago, which the bus
// still keeps; with a negative max_request_age it does (the old way).
func TestNewGroupMaxAge(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	endpoint := startRecordingDemo(t, "demo-1", func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		calls.Add(1)
		return h(ctx, req)
	})
	bus := startKafka(t)
	c := newClient(t, bus, "newgroup-client")
	payload := mustMarshal(t, &demo.Request{Message: "x"})
	call := func() {
		t.Helper()
		// A deadline long enough that the requests are still unexpired
		// when the later groups join: only max_request_age keeps them out.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := c.Call(ctx, "demo", "/demo.Demo/Ping", payload, nil); err != nil {
			t.Fatal(err)
		}
	}
	// run starts a server named name, makes n calls through it, waits
	// until the target has had until calls in all, and stops it.
	run := func(name string, maxAge time.Duration, n int, until int64) {
		t.Helper()
		cfg := serverConfig(bus, endpoint)
		cfg.Name, cfg.MaxRequestAge = name, maxAge
		cfg.Dedup = vrpc.DedupConf{Store: "none"} // each group's own memory would hide nothing anyway
		s, err := vserver.NewServer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() { errc <- s.Start() }()
		select {
		case <-s.Ready():
		case err := <-errc:
			t.Fatal(err)
		}
		for range n {
			call()
		}
		for deadline := time.Now().Add(30 * time.Second); calls.Load() < until && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		s.Stop() // drains what it took, replays included
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}

	run("first", time.Second, 5, 0)
	time.Sleep(2 * time.Second) // the five requests are now older than max_request_age
	run("renamed", time.Second, 1, 0)
	if got := calls.Load(); got != 6 {
		t.Errorf("the target ran %d calls after a renamed group joined, want 6 (none of the first group's again)", got)
	}
	run("old-way", -1, 1, 13) // starts at the oldest request kept: runs all 6 again, and its own
	if got := calls.Load(); got != 6+6+1 {
		t.Errorf("the target ran %d calls after a group with max_request_age -1 joined, want 13", got)
	}
}
