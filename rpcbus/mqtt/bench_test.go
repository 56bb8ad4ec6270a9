package mqtt_test

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
)

// BenchmarkRoundTrip measures the raw bus round trip of vRPC on the
// machine's Mosquitto: a caller publishes a request (QoS 1, waiting for the
// PUBACK) to a topic, a member of a shared subscription publishes a reply
// to the caller's inbox and then acknowledges the request, and the caller
// waits for the reply. Caller and server have a bus (a connection) each, as
// in separate processes. ns/op is wall time per round trip over all
// callers; trips/s is its inverse; p50 and p99 are the latencies callers
// saw.
func BenchmarkRoundTrip(b *testing.B) {
	for _, callers := range []int{1, 64} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			benchRoundTrip(b, callers)
		})
	}
}

func benchRoundTrip(b *testing.B, callers int) {
	ctx := context.Background()
	server, client := newBus(b, nil), newBus(b, nil)
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
		select {
		case <-done[i]:
		case <-time.After(30 * time.Second):
			b.Errorf("caller %d: no reply to request %d", i, n)
		}
	}
	newReq := func(i int) []byte {
		req := make([]byte, 8+len(ib.Address()))
		binary.BigEndian.PutUint32(req, uint32(i))
		copy(req[8:], ib.Address())
		return req
	}
	// Warm up: connections open, the subscription settled.
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

// BenchmarkPublish measures Publish alone (QoS 1, to a topic a group
// consumes), with its allocations.
func BenchmarkPublish(b *testing.B) {
	pub, sub := newBus(b, nil), newBus(b, nil)
	topic := name(b, "topic")
	s, err := sub.Subscribe(context.Background(), rpcbus.SubscribeOptions{Topics: []string{topic}, Group: name(b, "g")},
		func(d *rpcbus.Delivery) { d.Ack() })
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	msg := &rpcbus.Message{Value: make([]byte, 100)}
	b.ReportAllocs()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := pub.Publish(context.Background(), topic, msg); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
