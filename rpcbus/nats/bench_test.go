package nats_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/bustest"
	"github.com/nextpkg/vrpc/rpcbus/nats"
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

// BenchmarkPublish measures a JetStream publish alone (to its stored
// acknowledgement), with its allocations.
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

var _ rpcbus.Inboxer = (*nats.Bus)(nil)

// BenchmarkRawRoundTrip is the reference for BenchmarkRoundTrip: the same
// round trip written directly with nats.go, without this package: a
// JetStream publish waiting for its acknowledgement, a pull consumer read
// with the library's Consume, a core NATS reply. The gap between the two
// is the bus's own cost.
func BenchmarkRawRoundTrip(b *testing.B) {
	for _, callers := range []int{1, 64} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			benchRawRoundTrip(b, callers)
		})
	}
}

func benchRawRoundTrip(b *testing.B, callers int) {
	needServer(b)
	ctx := context.Background()
	connect := func() (*natsgo.Conn, jetstream.JetStream) {
		nc, err := natsgo.Connect(serverAddr)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			b.Fatal(err)
		}
		return nc, js
	}
	snc, sjs := connect()
	cnc, cjs := connect()
	topic := name(b, "requests")
	stream := nats.StreamName(topic)
	if _, err := sjs.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{topic}, Retention: jetstream.InterestPolicy}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { deleteStreams(b, topic) })
	cons, err := sjs.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{Durable: "server", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: -1})
	if err != nil {
		b.Fatal(err)
	}
	work := make(chan jetstream.Msg, 1024)
	var workers sync.WaitGroup
	for range 128 {
		workers.Go(func() {
			for m := range work {
				data := m.Data()
				if err := snc.Publish(string(data[8:]), data[:8]); err != nil {
					b.Error(err)
				}
				_ = m.Ack()
			}
		})
	}
	cc, err := cons.Consume(func(m jetstream.Msg) { work <- m }, jetstream.PullMaxMessages(1024))
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		cc.Stop()
		<-cc.Closed()
		close(work)
		workers.Wait()
	}()

	done := make([]chan struct{}, callers)
	seq := make([]atomic.Uint32, callers)
	for i := range done {
		done[i] = make(chan struct{}, 1)
	}
	inbox := cnc.NewInbox()
	sub, err := cnc.Subscribe(inbox, func(m *natsgo.Msg) {
		i, n := binary.BigEndian.Uint32(m.Data), binary.BigEndian.Uint32(m.Data[4:])
		if int(i) < callers && seq[i].Load() == n {
			done[i] <- struct{}{}
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Unsubscribe()
	roundTrip := func(i int, req []byte) {
		n := seq[i].Add(1)
		binary.BigEndian.PutUint32(req[4:], n)
		if _, err := cjs.Publish(ctx, topic, req); err != nil {
			b.Error(err)
			return
		}
		<-done[i]
	}
	reqs := make([][]byte, callers)
	for i := range reqs {
		reqs[i] = make([]byte, 8+len(inbox))
		binary.BigEndian.PutUint32(reqs[i], uint32(i))
		copy(reqs[i][8:], inbox)
	}
	bustest.MeasureTrips(b, callers, func(i int) { roundTrip(i, reqs[i]) })
}
