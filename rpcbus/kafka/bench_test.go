package kafka_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/bustest"
	"github.com/nextpkg/vrpc/rpcbus/kafka"
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
	bustest.BenchRoundTrip(b, newBus(b, set), newBus(b, set),
		bustest.BenchNames{Topic: name(b, "requests"), Group: name(b, "server"), Inbox: name(b, "client")}, callers)
}

// BenchmarkRoundTripFetchWait compares fetch_max_wait values: a fetch
// returns as soon as a record arrives, so in a steady group a short wait
// should not lower latency, only add idle fetches. (It does bound how long
// the messages of a partition gained in a rebalance wait: see the package
// documentation.)
func BenchmarkRoundTripFetchWait(b *testing.B) {
	for _, wait := range []string{"10ms", "5s"} {
		for _, callers := range []int{1, 64} {
			b.Run(fmt.Sprintf("wait=%s/callers=%d", wait, callers), func(b *testing.B) {
				set := testSettings()
				set["fetch_max_wait"] = wait
				benchRoundTrip(b, callers, set)
			})
		}
	}
}

// BenchmarkPublish measures Publish alone, with its allocations.
func BenchmarkPublish(b *testing.B) {
	bus := newBus(b, nil)
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

var _ rpcbus.Inboxer = (*kafka.Bus)(nil)
