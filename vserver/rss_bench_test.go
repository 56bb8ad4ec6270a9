//go:build linux

package vserver_test

import (
	"bufio"
	"context"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/example/demo/demoserver"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/embedded"
	"github.com/nextpkg/vrpc/vclient"
	"github.com/nextpkg/vrpc/vserver"
)

// BenchmarkEmbeddedRSS measures what `vrpc serve` with rpc_bus.type
// embedded keeps in memory as calls go through it: a server, its broker
// and a client in one process, b.N calls from 16 goroutines. It reports
// the process's resident set and live heap after the calls (after a GC
// that returns freed memory to the OS), and the heap grown per call.
// Each case should run in a process of its own, as RSS seldom shrinks:
//
//	go test -run '^$' -bench 'EmbeddedRSS/keep_all$' -benchtime 80000x ./vserver
//	go test -run '^$' -bench 'EmbeddedRSS/default$' -benchtime 80000x ./vserver
//	go test -run '^$' -bench 'EmbeddedRSS/retention_5s$' -benchtime 80000x ./vserver
//
// and the same with _nodedup, without the dedup store.
func BenchmarkEmbeddedRSS(b *testing.B) {
	keepAll := map[string]any{"retention": "720h", "retention_bytes": -1} // as before retention
	for _, tc := range []struct {
		name     string
		settings map[string]any
		dedup    string
	}{
		{"keep_all", keepAll, "memory"},
		{"default", nil, "memory"},
		{"retention_5s", map[string]any{"retention": "5s"}, "memory"},
		// Without the dedup store, which keeps up to dedup.size replies
		// for dedup.ttl within dedup.max_bytes: the broker alone.
		{"keep_all_nodedup", keepAll, "none"},
		{"default_nodedup", nil, "none"},
		{"retention_5s_nodedup", map[string]any{"retention": "5s"}, "none"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			busCfg := rpcbus.Config{Type: "embedded", Brokers: []string{"127.0.0.1:0"}, Settings: tc.settings}
			broker, err := embedded.New(busCfg) // holds the broker; server and client share it
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = broker.Close() })
			busCfg.Brokers = broker.Brokers()

			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			target := demoserver.Serve(lis, "demo-1")
			b.Cleanup(target.Stop)
			s, err := vserver.NewServer(&vrpc.Config{Name: "rss", Port: -1, RpcBus: busCfg,
				Dedup:   vrpc.DedupConf{Store: tc.dedup},
				Targets: map[string]vrpc.Target{"demo": {Endpoint: lis.Addr().String()}}})
			if err != nil {
				b.Fatal(err)
			}
			errc := make(chan error, 1)
			go func() { errc <- s.Start() }()
			select {
			case <-s.Ready():
			case err := <-errc:
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Stop(); <-errc })
			c, err := vclient.New(vclient.Config{ClientID: "rss", RpcBus: busCfg})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = c.Close() })
			payload, err := proto.Marshal(&demo.Request{Message: strings.Repeat("x", 64)})
			if err != nil {
				b.Fatal(err)
			}
			call := func() error {
				_, err := c.Call(context.Background(), "demo", "/demo.Demo/Ping", payload, nil)
				return err
			}
			for range 1000 { // warm up: connections, worker stacks, pools
				if err := call(); err != nil {
					b.Fatal(err)
				}
			}
			heap0 := liveHeap()

			const workers = 16
			var (
				wg   sync.WaitGroup
				next = make(chan struct{})
			)
			for range workers {
				wg.Go(func() {
					for range next {
						if err := call(); err != nil {
							b.Error(err)
						}
					}
				})
			}
			for b.Loop() {
				next <- struct{}{}
			}
			close(next)
			wg.Wait()
			b.StopTimer()

			heap := liveHeap()
			b.ReportMetric(float64(rss())/(1<<20), "rss-MiB")
			b.ReportMetric(float64(heap)/(1<<20), "heap-MiB")
			b.ReportMetric((float64(heap)-float64(heap0))/float64(b.N), "heap-B/call")
		})
	}
}

// liveHeap is the heap in use after a full GC that returns what it frees.
func liveHeap() uint64 {
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// rss is the process's resident set size in bytes, from /proc.
func rss() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
