package benchkit_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/nextpkg/vrpc/internal/benchkit"
	"github.com/nextpkg/vrpc/internal/inproc"
	"github.com/nextpkg/vrpc/rpcbus"
)

func TestMain(m *testing.M) {
	// go-zero starts goroutines from init for the life of the process.
	goleak.VerifyTestMain(m, goleak.IgnoreCurrent())
}

func TestPercentile(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		out := make([]time.Duration, len(n))
		for i, v := range n {
			out[i] = time.Duration(v) * time.Millisecond
		}
		return out
	}
	for _, tc := range []struct {
		samples []time.Duration
		p       float64
		want    time.Duration
	}{
		{nil, 0.5, 0},
		{ms(7), 0.5, 7 * time.Millisecond},
		{ms(7), 0.99, 7 * time.Millisecond},
		{ms(1, 2, 3, 4), 0.5, 2 * time.Millisecond},
		{ms(1, 2, 3, 4), 0.75, 3 * time.Millisecond},
		{ms(1, 2, 3, 4), 1, 4 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 0.99, 10 * time.Millisecond},
	} {
		if got := benchkit.Percentile(tc.samples, tc.p); got != tc.want {
			t.Errorf("Percentile(%v, %v) = %v, want %v", tc.samples, tc.p, got, tc.want)
		}
	}
}

func TestTwoHopLimit(t *testing.T) {
	if got := benchkit.TwoHopLimit(1000, 1000); got != 500 {
		t.Errorf("TwoHopLimit(1000, 1000) = %v, want 500", got)
	}
	if got := benchkit.TwoHopLimit(0, 1000); got != 0 {
		t.Errorf("TwoHopLimit(0, 1000) = %v, want 0", got)
	}
}

func TestGatewayLimit(t *testing.T) {
	if got := benchkit.GatewayLimit(1000, 1000); math.Abs(got-1000.0/3) > 1e-9 {
		t.Errorf("GatewayLimit(1000, 1000) = %v, want 333.3", got)
	}
	if got := benchkit.GatewayLimit(1000, 0); got != 0 {
		t.Errorf("GatewayLimit(1000, 0) = %v, want 0", got)
	}
}

// TestRunCounts checks that Run counts calls and failures, keeps only
// successful latencies, and stops starting calls once the time is up.
func TestRunCounts(t *testing.T) {
	var n atomic.Int64
	errOdd := errors.New("odd call")
	res := benchkit.Run(context.Background(), benchkit.RunConfig{
		Path: "test", Concurrency: 3, Warmup: 20 * time.Millisecond, Duration: 100 * time.Millisecond,
	}, func(context.Context) error {
		time.Sleep(time.Millisecond)
		if n.Add(1)%2 == 1 {
			return errOdd
		}
		return nil
	})
	if res.Path != "test" || res.Concurrency != 3 || res.Duration != 100*time.Millisecond {
		t.Errorf("result %+v", res)
	}
	if res.Calls == 0 || res.Errors == 0 || res.Errors > res.Calls {
		t.Errorf("calls %d, errors %d", res.Calls, res.Errors)
	}
	if res.Calls > n.Load() {
		t.Errorf("counted %d calls, but only %d were made", res.Calls, n.Load())
	}
	if res.FirstError != errOdd.Error() {
		t.Errorf("first error %q, want %q", res.FirstError, errOdd)
	}
	if res.P50 < time.Millisecond || res.P99 < res.P50 || res.Max < res.P99 {
		t.Errorf("latencies p50 %v p99 %v max %v", res.P50, res.P99, res.Max)
	}
	want := float64(res.Calls-res.Errors) / 0.1
	if res.Throughput != want {
		t.Errorf("throughput %v, want %v", res.Throughput, want)
	}
}

// TestRunRounds checks that RunRounds runs every path in each round, in
// turn, and adds up each path's slices.
func TestRunRounds(t *testing.T) {
	var order []string
	var calls [2]atomic.Int64
	paths := []benchkit.Path{
		{Name: "a", Call: func(context.Context) error { calls[0].Add(1); time.Sleep(time.Millisecond); return nil }},
		{Name: "b", Call: func(context.Context) error {
			calls[1].Add(1)
			time.Sleep(time.Millisecond)
			return errors.New("b fails")
		}},
	}
	cfg := benchkit.RunConfig{Concurrency: 2, Warmup: 10 * time.Millisecond, Duration: 120 * time.Millisecond}
	res := benchkit.RunRounds(context.Background(), cfg, 3, paths, func(round int, p benchkit.Path) {
		order = append(order, fmt.Sprint(round, p.Name))
	})
	if want := "[0a 0b 1a 1b 2a 2b]"; fmt.Sprint(order) != want {
		t.Errorf("slices ran in the order %v, want %s", order, want)
	}
	if len(res) != 2 || res[0].Path != "a" || res[1].Path != "b" {
		t.Fatalf("results %+v", res)
	}
	for i, r := range res {
		if r.Duration != cfg.Duration || r.Concurrency != 2 || r.Calls == 0 || r.Calls > calls[i].Load() {
			t.Errorf("%s: %+v (made %d calls): want the three slices' time and calls", r.Path, r, calls[i].Load())
		}
	}
	if res[0].Errors != 0 || res[0].Throughput <= 0 || res[0].P50 < time.Millisecond {
		t.Errorf("a: %+v", res[0])
	}
	if res[1].Errors != res[1].Calls || res[1].Throughput != 0 || res[1].FirstError != "b fails" {
		t.Errorf("b: %+v: want every call failed", res[1])
	}
}

func TestRunCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	res := benchkit.Run(ctx, benchkit.RunConfig{Concurrency: 2, Duration: time.Minute}, func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
			return nil
		}
	})
	if time.Since(start) > 10*time.Second {
		t.Fatalf("Run went on %v after its context was cancelled", time.Since(start))
	}
	if res.Duration >= time.Minute || res.Calls == 0 {
		t.Errorf("result %+v: want the time measured until the cancel", res)
	}
}

func TestRawBusEchoes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := benchkit.NewRawBus(ctx, rpcbus.Config{Type: "memory", Brokers: []string{t.Name()}}, benchkit.RawNames{})
	if err != nil {
		t.Fatal(err)
	}
	for _, payload := range [][]byte{[]byte("ping"), bytes.Repeat([]byte{0xff}, 4096), nil} {
		got, err := r.Call(ctx, payload)
		if err != nil || !bytes.Equal(got, payload) {
			t.Errorf("Call(%d bytes) = %d bytes, %v; want the payload back", len(payload), len(got), err)
		}
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// TestSetupPaths makes each path's call over each bus that needs nothing
// installed.
func TestSetupPaths(t *testing.T) {
	for _, bus := range []string{inproc.BusEmbedded, inproc.BusMemory} {
		t.Run(bus, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s, err := benchkit.NewSetup(ctx, inproc.Options{Bus: bus}, 100)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			}()
			for _, p := range s.GatewayPaths() {
				if err := p.Call(ctx); err != nil {
					t.Errorf("%s: %v", p.Name, err)
				}
			}
		})
	}
}
