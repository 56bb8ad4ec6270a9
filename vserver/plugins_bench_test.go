//go:build unix

package vserver

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/example/demo/demoserver"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/embedded"
	"github.com/nextpkg/vrpc/vclient"
	_ "github.com/nextpkg/vrpc/vserver/plugin/tracing" // plugins: tracing
)

// BenchmarkPluginChain measures the cost of the full plugin chain (tracing
// sampling 1% of new traces with no exporter, logger at info writing to a
// discarding writer, metrics) against no plugins, and of the same chain
// logging one call in ten, and of each of the three alone, end to end: a
// client calling the demo target through an in-process Kafka and a server.
//
// One deployment serves every chain: the server's handler switches between
// them, and each iteration is one round of a time slice per chain (the
// order shuffled), so that all chains see the same broker, the same
// partitions and the same machine, even when its load drifts. It reports
// the calls/s without plugins and with the full chain, and each chain's
// throughput loss against none:
//
//	go test -run '^$' -bench PluginChain -benchtime 20x ./vserver
func BenchmarkPluginChain(b *testing.B) {
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewJSONHandler(io.Discard, nil)))
	b.Cleanup(func() { slog.SetDefault(old) }) // as TestMain left it

	broker, err := embedded.Start("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(broker.Close)
	busCfg := rpcbus.Config{Type: "kafka", Brokers: []string{broker.Addr()}}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	target := demoserver.Serve(lis, "demo-1")
	b.Cleanup(target.Stop)
	s, err := NewServer(&vrpc.Config{Name: "bench", Port: -1, RpcBus: busCfg,
		Targets: map[string]vrpc.Target{"demo": {Endpoint: lis.Addr().String()}}})
	if err != nil {
		b.Fatal(err)
	}

	tracing := vrpc.PluginConf{Name: "tracing", Enabled: true, Settings: map[string]any{"sample": 0.01}}
	logger := vrpc.PluginConf{Name: "logger", Enabled: true, Settings: map[string]any{"level": "info"}}
	sampledLogger := vrpc.PluginConf{Name: "logger", Enabled: true, Settings: map[string]any{"level": "info", "sample": 0.1}}
	metrics := vrpc.PluginConf{Name: "metrics", Enabled: true}
	chains := []struct {
		name    string
		plugins []vrpc.PluginConf
	}{
		{"none", nil},
		{"full", []vrpc.PluginConf{tracing, logger, metrics}},
		{"full_log10pct", []vrpc.PluginConf{tracing, sampledLogger, metrics}},
		{"logger", []vrpc.PluginConf{logger}},
		{"metrics", []vrpc.PluginConf{metrics}},
		{"tracing", []vrpc.PluginConf{tracing}},
	}
	handlers := make([]Handler, len(chains))
	for i, ch := range chains {
		env := PluginEnv{Server: "bench", Targets: []string{"demo"}, Registerer: prometheus.NewRegistry()}
		h, built, err := chain(env, ch.plugins, s.forward)
		if err != nil {
			b.Fatal(err)
		}
		started, err := startPlugins(context.Background(), built)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { stopPlugins(context.Background(), slog.Default(), started) })
		handlers[i] = h
	}
	var current atomic.Int32
	s.handler = func(ctx context.Context, call *Call) *Result { return handlers[current.Load()](ctx, call) }
	errc := make(chan error, 1)
	go func() { errc <- s.Start() }()
	select {
	case <-s.Ready():
	case err := <-errc:
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Stop(); <-errc })

	c, err := vclient.New(vclient.Config{ClientID: "bench", RpcBus: busCfg})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	payload, err := proto.Marshal(&demo.Request{Message: strings.Repeat("x", 64)})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	call := func() error {
		_, err := c.Call(ctx, "demo", "/demo.Demo/Ping", payload, nil)
		return err
	}
	for range 500 { // warm up: metadata, connections, worker stacks
		if err := call(); err != nil {
			b.Fatal(err)
		}
	}
	// run calls from concurrency goroutines for d and counts them.
	run := func(concurrency int, d time.Duration) int64 {
		var n atomic.Int64
		var wg sync.WaitGroup
		stop := time.Now().Add(d)
		for range concurrency {
			wg.Go(func() {
				for time.Now().Before(stop) {
					if err := call(); err != nil {
						b.Error(err)
						return
					}
					n.Add(1)
				}
			})
		}
		wg.Wait()
		return n.Load()
	}

	for _, concurrency := range []int{1, 64} {
		b.Run(fmt.Sprintf("concurrency%d", concurrency), func(b *testing.B) {
			const slice = 300 * time.Millisecond
			calls := make([]int64, len(chains))
			took := make([]time.Duration, len(chains))
			cpu := make([]time.Duration, len(chains))
			// A new order each round: a chain's slice must not always
			// follow the same other chain (whose garbage it would collect).
			rnd := rand.New(rand.NewPCG(7, uint64(concurrency)))
			for b.Loop() {
				for _, which := range rnd.Perm(len(chains)) {
					current.Store(int32(which))
					start, cpu0 := time.Now(), cpuTime()
					calls[which] += run(concurrency, slice)
					took[which] += time.Since(start)
					cpu[which] += cpuTime() - cpu0
				}
			}
			// Throughput is what the target is about, but on a shared
			// machine it moves with everyone else's load; the process's
			// CPU time per call moves much less, and on a saturated
			// machine throughput is inversely proportional to it.
			none := float64(calls[0]) / took[0].Seconds()
			noneCPU := cpu[0] / time.Duration(calls[0])
			b.ReportMetric(none, "none-calls/s")
			b.ReportMetric(float64(noneCPU.Microseconds()), "none-cpu-µs/call")
			for i, ch := range chains[1:] {
				rate := float64(calls[i+1]) / took[i+1].Seconds()
				perCall := cpu[i+1] / time.Duration(calls[i+1])
				if ch.name == "full" {
					b.ReportMetric(rate, "full-calls/s")
					b.ReportMetric(float64(perCall.Microseconds()), "full-cpu-µs/call")
				}
				b.ReportMetric(100*(1-rate/none), ch.name+"-loss-%")
				b.ReportMetric(100*(1-float64(noneCPU)/float64(perCall)), ch.name+"-cpu-loss-%")
			}
		})
	}
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
