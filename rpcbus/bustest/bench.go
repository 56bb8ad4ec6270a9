package bustest

import (
	"context"
	"encoding/binary"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nextpkg/vrpc/rpcbus"
)

// BenchNames are the names a round trip benchmark uses on the bus: the
// request topic, the server's group and the client's inbox. Backends pick
// them so that their cleanup finds what the benchmark created.
type BenchNames struct {
	Topic, Group, Inbox string
}

// BenchRoundTrip measures the raw bus round trip of vRPC: each of callers
// goroutines publishes a request to names.Topic, a member of group names.Group
// publishes a reply to the caller's inbox, and the caller waits for it
// before its next request. server and client are two buses, as in two
// processes; client must implement rpcbus.Inboxer. The server hands each
// request to a pool of workers, as a vRPC server hands it to a gRPC call;
// a worker publishes the reply, then acknowledges.
//
// ns/op is wall time per round trip over all callers; it reports trips/s,
// its inverse, and p50-us and p99-us, the latencies callers saw.
func BenchRoundTrip(b *testing.B, server, client rpcbus.Bus, names BenchNames, callers int) {
	ctx := context.Background()
	inboxer, ok := client.(rpcbus.Inboxer)
	if !ok {
		b.Fatalf("%T does not implement rpcbus.Inboxer", client)
	}

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
	sub, err := server.Subscribe(ctx, rpcbus.SubscribeOptions{Topics: []string{names.Topic}, Group: names.Group},
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
	ib, err := inboxer.Inbox(ctx, names.Inbox, func(m *rpcbus.Message) {
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
		if err := client.Publish(ctx, names.Topic, &rpcbus.Message{Value: req}); err != nil {
			b.Error(err)
			return
		}
		select {
		case <-done[i]:
		case <-time.After(30 * time.Second):
			b.Errorf("caller %d: no reply to request %d", i, n)
		}
	}
	reqs := make([][]byte, callers)
	for i := range reqs {
		reqs[i] = make([]byte, 8+len(ib.Address()))
		binary.BigEndian.PutUint32(reqs[i], uint32(i))
		copy(reqs[i][8:], ib.Address())
	}
	MeasureTrips(b, callers, func(i int) { roundTrip(i, reqs[i]) })
}

// MeasureTrips measures a round trip: after one warm-up trip per caller
// (topics known, connections open, groups settled) it runs b.N trips from
// callers goroutines, trip(i) making one for caller i and returning once
// its reply is in, and reports trips/s and the p50-us and p99-us latencies
// the callers saw.
func MeasureTrips(b *testing.B, callers int, trip func(caller int)) {
	for i := range callers {
		trip(i)
	}
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for i := range callers {
		wg.Go(func() {
			for {
				op := next.Add(1) - 1
				if op >= int64(b.N) {
					return
				}
				t0 := time.Now()
				trip(i)
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
