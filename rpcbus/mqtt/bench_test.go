package mqtt_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/bustest"
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
	bustest.BenchRoundTrip(b, newBus(b, nil), newBus(b, nil),
		bustest.BenchNames{Topic: name(b, "requests"), Group: name(b, "server"), Inbox: name(b, "client")}, callers)
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
