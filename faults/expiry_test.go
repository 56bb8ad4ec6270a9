package faults_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc/codes"

	"github.com/nextpkg/vrpc/faults"
)

// TestExpiryWhileNoServer queues calls while no server runs. Those whose
// deadline passes in the queue have already failed with DEADLINE_EXCEEDED
// at the caller: when a server starts it must drop them without calling
// the target, and count them (Stats().Expired). Those whose deadline is
// still ahead wait in the queue and are served, once each.
func TestExpiryWhileNoServer(t *testing.T) {
	t.Parallel()
	const expiring, waiting = 1000, 200
	bus := newTestBus(t, "kafka", "")
	tgt := &faults.Target{Name: "counted"}
	ts := startTarget(t, tgt)
	cfg := bus.serverConfig(ts.Addr(), "in-process")
	// A first server creates the request topic and joins the group, then
	// stops: from here on the requests queue.
	startServer(t, cfg).Stop()
	c := bus.client(t, "expiry")
	call := faults.DemoCaller(c, target)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	expired := faults.Check(faults.Start(ctx, faults.Load{Name: "expiring", Calls: expiring, Concurrency: 250, Deadline: 500 * time.Millisecond}, call).Wait(), tgt)
	// On a loaded machine some calls end before their request is on the
	// bus: count what is queued.
	var inQueue int64
	eventually(t, "the request topic's length settling", time.Minute, func() bool {
		n := topicLength(t, bus.addr, bus.requestTopic())
		time.Sleep(300 * time.Millisecond)
		inQueue = topicLength(t, bus.addr, bus.requestTopic())
		return n == inQueue
	})
	queued := faults.Start(ctx, faults.Load{Name: "waiting", Calls: waiting, Concurrency: waiting, Deadline: time.Minute}, call)
	eventually(t, "the waiting calls published", time.Minute, func() bool { return c.Pending() == waiting })
	srv := startServer(t, cfg)
	served := faults.Check(queued.Wait(), tgt)
	for limit := time.Now().Add(time.Minute); srv.Stats().Expired < uint64(inQueue); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(limit) {
			t.Fatalf("%d expired requests queued, server counted %+v within 1m", inQueue, srv.Stats())
		}
	}

	t.Logf("queued with a 500ms deadline: %v; %d of their requests on the bus", expired, inQueue)
	t.Logf("queued with a 1m deadline: %v", served)
	t.Logf("server: %+v; target executions: %d", srv.Stats(), tgt.Total())

	// A call whose request was on the bus waits for its deadline:
	// DEADLINE_EXCEEDED. One the bus had not taken by then (a loaded
	// machine, 250 at once) is UNAVAILABLE, "not sent", as the README
	// promises. Nothing else, and none of them run.
	if de, un := expired.ByCode[codes.DeadlineExceeded], expired.ByCode[codes.Unavailable]; de+un != expiring || de == 0 {
		t.Errorf("expiring calls: %v; want each DEADLINE_EXCEEDED or (not sent) UNAVAILABLE, and some queued", expired)
	}
	if served.OK != waiting || served.Duplicated != 0 {
		t.Errorf("waiting calls: %v; want all served, once", served)
	}
	if inQueue == 0 {
		t.Errorf("none of the expiring requests reached the bus")
	}
	if got := srv.Stats().Expired; got < uint64(inQueue) || got > expiring {
		t.Errorf("Stats().Expired = %d, want the %d expired requests queued", got, inQueue)
	}
	for _, o := range []faults.Report{expired, served} {
		if o.Lost != 0 || o.Wrong != 0 {
			t.Errorf("%v: want none lost or wrong", o)
		}
	}
	if n := tgt.Total(); n != waiting {
		t.Errorf("target executed %d requests, want only the %d waiting ones", n, waiting)
	}
	for i := range expiring {
		if n := tgt.Executions("expiring-" + strconv.Itoa(i)); n != 0 {
			t.Fatalf("expired request %d executed %d times", i, n)
		}
	}
}

// topicLength returns the number of messages topic holds (the sum of its
// partitions' end offsets).
func topicLength(t *testing.T, broker, topic string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	offsets, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err == nil {
		err = offsets.Error()
	}
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	var n int64
	offsets.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}
