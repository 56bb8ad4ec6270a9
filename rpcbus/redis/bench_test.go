package redis_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/redis"
)

// BenchmarkRoundTrip measures the raw bus round trip of vRPC: a caller
// publishes a request to a topic, a group subscriber publishes a reply to
// the caller's inbox, and the caller waits for it. Caller and server have a
// bus (a producer) each, as in separate processes. ns/op is wall time per
// round trip over all callers; trips/s is its inverse; p50 and p99 are the
// latencies callers saw.
func BenchmarkRoundTrip(b *testing.B) {
	for _, callers := range []int{1, 64} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			benchRoundTrip(b, callers, nil)
		})
	}
}

func benchRoundTrip(b *testing.B, callers int, set map[string]any) {
	ctx := context.Background()
	server, client := newBus(b, set), newBus(b, set)
	topic := name(b, "requests")

	// The server: the subscription's goroutine hands each request to a
	// pool of workers, as a vRPC server hands it to a gRPC call; a worker
	// publishes the reply, then acknowledges.
	work := make(chan *rpcbus.Delivery, 1024)
	var workers sync.WaitGroup
	for range 128 {
		workers.Go(func() {
			for d := range work {
				id, replyTo := d.Value[:8], string(d.Value[8:])
				if err := server.Publish(ctx, replyTo, &rpcbus.Message{Value: id}); err != nil {
					b.Error(err)
				}
				d.Ack()
			}
		})
	}
	sub, err := server.Subscribe(ctx, rpcbus.SubscribeOptions{Topics: []string{topic}, Group: name(b, "server")},
		func(d *rpcbus.Delivery) { work <- d })
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = sub.Close(ctx)
		close(work)
		workers.Wait()
	}()

	// The client: one inbox; caller i waits on done[i] for the reply to
	// its request number seq[i].
	done := make([]chan struct{}, callers)
	seq := make([]atomic.Uint32, callers)
	for i := range done {
		done[i] = make(chan struct{}, 1)
	}
	ib, err := client.Inbox(ctx, name(b, "client"), func(m *rpcbus.Message) {
		i, n := binary.BigEndian.Uint32(m.Value), binary.BigEndian.Uint32(m.Value[4:])
		if int(i) < callers && seq[i].Load() == n {
			done[i] <- struct{}{}
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer ib.Close()

	roundTrip := func(i int, req []byte) {
		n := seq[i].Add(1)
		binary.BigEndian.PutUint32(req[4:], n)
		if err := client.Publish(ctx, topic, &rpcbus.Message{Value: req}); err != nil {
			b.Error(err)
			return
		}
		<-done[i] // a lost reply hangs the benchmark until go test's timeout
	}
	newReq := func(i int) []byte {
		req := make([]byte, 8+len(ib.Address()))
		binary.BigEndian.PutUint32(req, uint32(i))
		copy(req[8:], ib.Address())
		return req
	}
	// Warm up: topics known, connections open, the group settled.
	for i := range callers {
		roundTrip(i, newReq(i))
	}

	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for i := range callers {
		wg.Go(func() {
			req := newReq(i)
			for {
				op := next.Add(1) - 1
				if op >= int64(b.N) {
					return
				}
				t0 := time.Now()
				roundTrip(i, req)
				lat[op] = time.Since(t0)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()

	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "trips/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-us")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-us")
}

// BenchmarkPublish measures Publish alone, with its allocations.
func BenchmarkPublish(b *testing.B) {
	bus := newBus(b, map[string]any{"max_len": 1000})
	topic := name(b, "topic")
	if err := bus.CreateTopics(context.Background(), topic); err != nil {
		b.Fatal(err)
	}
	msg := &rpcbus.Message{Value: make([]byte, 100)}
	b.ReportAllocs()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := bus.Publish(context.Background(), topic, msg); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

var _ rpcbus.Inboxer = (*redis.Bus)(nil)
