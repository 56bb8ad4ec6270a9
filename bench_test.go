package vrpc_test

import (
	"context"
	"runtime"
	"testing"

	"github.com/nextpkg/vrpc/internal/benchkit"
	"github.com/nextpkg/vrpc/internal/inproc"
)

// The benchmarks measure a call through vRPC against its two parts, over an
// in-process Kafka, serially and with ~64 calls in flight:
//
//	go test -run '^$' -bench . -benchtime 5s
//
// `vrpc bench` drives the same paths (package benchkit) and adds latency
// percentiles and the ratios. Each benchmark starts its own deployment.

// benchPayload is the size of the Ping message, as `vrpc bench --payload`.
const benchPayload = 64

// BenchmarkDirectGRPC calls the demo target over loopback gRPC: no vRPC.
func BenchmarkDirectGRPC(b *testing.B) { benchmarkPath(b, benchkit.PathDirect) }

// BenchmarkRawBus makes the bus round trip of a vRPC call with no gRPC hop.
func BenchmarkRawBus(b *testing.B) { benchmarkPath(b, benchkit.PathRaw) }

// BenchmarkVRPC calls the demo target through vclient, the bus and vserver.
func BenchmarkVRPC(b *testing.B) { benchmarkPath(b, benchkit.PathVRPC) }

func benchmarkPath(b *testing.B, path string) {
	ctx := context.Background()
	s, err := benchkit.NewSetup(ctx, inproc.Options{Bus: inproc.BusEmbedded}, benchPayload)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := s.Close(); err != nil {
			b.Error(err)
		}
	})
	var call benchkit.CallFunc
	for _, p := range s.Paths() {
		if p.Name == path {
			call = p.Call
		}
	}
	// Warm up: the first calls fetch metadata and open connections.
	for range 100 {
		if err := call(ctx); err != nil {
			b.Fatal(err)
		}
	}

	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := call(ctx); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
	})
	b.Run("parallel64", func(b *testing.B) {
		// RunParallel runs parallelism × GOMAXPROCS goroutines.
		procs := runtime.GOMAXPROCS(0)
		b.SetParallelism((64 + procs - 1) / procs)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := call(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
	})
}
