package vserver_test

import (
	"context"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nextpkg/vrpc/vserver"
)

// BenchmarkMemoryDedup measures the in-memory dedup store at its default
// size, full, as a busy server keeps it: a claim and a done per call, and
// what the store costs every garbage collection of the server's process
// (gc-ms: one collection, with little else live to mark). The store's
// entries are live for ten minutes, so the second cost is paid by every
// call the server makes, not only by the store:
//
//	go test -run '^$' -bench MemoryDedup -benchmem ./vserver
func BenchmarkMemoryDedup(b *testing.B) {
	const size = 100000 // dedup.size's default
	ctx := context.Background()
	// Keys and replies of the sizes a call makes: client id, request id
	// and reply address; a small encoded reply.
	prefix := "bench\x00bench-0123456789ab-"
	replyTo := "\x00vrpc.responses.bench.ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	reply := []byte(strings.Repeat("r", 150))
	key := func(i int) string { return prefix + strconv.Itoa(i) + replyTo }
	fill := func(m *vserver.MemoryDedup, from int) {
		for i := range size {
			k := key(from + i)
			_, _, _ = m.Claim(ctx, k, time.Minute)
			_ = m.Done(ctx, k, append([]byte(nil), reply...), time.Minute)
		}
	}

	b.Run("call", func(b *testing.B) {
		m := vserver.NewMemoryDedup(size)
		fill(m, 0)
		i := size
		b.ReportAllocs()
		for b.Loop() {
			k := key(i)
			if _, claimed, _ := m.Claim(ctx, k, time.Minute); !claimed {
				b.Fatal("not claimed")
			}
			_ = m.Done(ctx, k, reply, time.Minute)
			i++
		}
	})
	b.Run("gc", func(b *testing.B) {
		m := vserver.NewMemoryDedup(size)
		fill(m, 0)
		runtime.GC()
		for b.Loop() {
			runtime.GC()
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "gc-ms")
		runtime.KeepAlive(m)
	})
}
