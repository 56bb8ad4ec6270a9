package vgateway_test

import (
	"context"
	"runtime"
	"testing"

	"github.com/nextpkg/vrpc/internal/benchkit"
	"github.com/nextpkg/vrpc/internal/inproc"
)

// BenchmarkGateway measures a call through the gateway (a gRPC caller ->
// gateway -> in-process Kafka -> vRPC server -> demo target) against a
// direct gRPC call to the target, serially and with 64 calls in flight:
//
//	go test -run '^$' -bench Gateway ./vgateway/
//
// `vrpc bench --via gateway` drives the same paths with percentiles and
// the ratios.
func BenchmarkGateway(b *testing.B) {
	ctx := context.Background()
	s, err := benchkit.NewSetup(ctx, inproc.Options{Bus: inproc.BusEmbedded}, 64)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := s.Close(); err != nil {
			b.Error(err)
		}
	})
	for _, p := range []benchkit.Path{{Name: "direct", Call: s.Direct}, {Name: "gateway", Call: s.Gateway}} {
		for range 100 { // the first calls open connections and learn the schema
			if err := p.Call(ctx); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(p.Name+"/serial", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := p.Call(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
		})
		b.Run(p.Name+"/parallel64", func(b *testing.B) {
			procs := runtime.GOMAXPROCS(0)
			b.SetParallelism((64 + procs - 1) / procs)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := p.Call(ctx); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
		})
	}
}
