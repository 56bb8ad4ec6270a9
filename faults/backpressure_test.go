package faults_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/nextpkg/vrpc/codec"
	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/faults"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vrpcpb"
)

// TestInFlightLimit has many callers wait on a slow target: the server
// must never have more than max_in_flight calls at the target at once,
// however many requests wait on the bus, and must still serve them all.
func TestInFlightLimit(t *testing.T) {
	t.Parallel()
	const calls, maxInFlight = 1000, 4
	bus := newTestBus(t, "kafka", "")
	tgt := &faults.Target{Name: "slow", Delay: 10 * time.Millisecond}
	ts := startTarget(t, tgt)
	cfg := bus.serverConfig(ts.Addr(), "in-process")
	cfg.MaxInFlight = maxInFlight
	startServer(t, cfg)
	c := bus.client(t, "in-flight")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	rep := faults.Check(faults.Start(ctx, faults.Load{Name: "call", Calls: calls, Concurrency: 64, Deadline: time.Minute},
		faults.DemoCaller(c, target)).Wait(), tgt)
	t.Logf("%v; most at the target at once: %d (max_in_flight %d)", rep, tgt.Peak(), maxInFlight)
	if rep.OK != calls || rep.Duplicated != 0 {
		t.Errorf("%v; want every call served once", rep)
	}
	if p := tgt.Peak(); p > maxInFlight {
		t.Errorf("%d calls at the target at once; max_in_flight is %d", p, maxInFlight)
	}
}

// BenchmarkQueuedBacklog queues 100,000 requests while no server runs,
// then starts a server (max_in_flight 64) in a process of its own in front
// of a slow target (20ms a call) and samples that process's resident memory
// (VmRSS) while it works through the backlog for 10s. A server that read
// the backlog off the bus faster than it forwards it would grow with the
// backlog. This one holds at most max_in_flight requests in its workers,
// plus what its Kafka consumer has fetched ahead: one fetch, at most
// max_message_bytes per partition (5 MiB by default, so 20 MiB over the 4
// partitions). With 64-byte requests the whole backlog (about 13 MiB) fits
// in one fetch; with 1 KiB requests (about 110 MiB queued) it does not, and
// the server's memory must not follow the backlog.
//
//	go test -run '^$' -bench QueuedBacklog -benchtime 1x ./faults/
func BenchmarkQueuedBacklog(b *testing.B) {
	for _, payload := range []int{64, 1024} {
		b.Run(fmt.Sprintf("payload=%dB", payload), func(b *testing.B) { benchmarkQueuedBacklog(b, payload) })
	}
}

func benchmarkQueuedBacklog(b *testing.B, payload int) {
	const (
		backlog     = 100000
		maxInFlight = 64
		window      = 10 * time.Second
	)
	for b.Loop() {
		bus := newTestBus(b, "kafka", "")
		tgt := &faults.Target{Name: "slow", Delay: 20 * time.Millisecond}
		ts := startTarget(b, tgt)
		cfg := bus.serverConfig(ts.Addr(), "server")
		cfg.MaxInFlight = maxInFlight
		// A first server creates the topic and group; requests queue
		// while none runs.
		startServer(b, cfg).Stop()
		raw, err := rpcbus.New(bus.cfg)
		if err != nil {
			b.Fatal(err)
		}
		var replies atomic.Int64
		inbox, err := raw.(rpcbus.Inboxer).Inbox(context.Background(), bus.responses+".backlog", func(*rpcbus.Message) { replies.Add(1) })
		if err != nil {
			b.Fatal(err)
		}
		queue(b, raw, bus.requestTopic(), inbox.Address(), backlog, payload)

		p := startServerProcess(b, "server", cfg)
		start := time.Now()
		first := rss(b, p.cmd.Process.Pid)
		peak := first
		for time.Since(start) < window {
			time.Sleep(50 * time.Millisecond)
			peak = max(peak, rss(b, p.cmd.Process.Pid))
		}
		elapsed := time.Since(start)
		served := tgt.Total()
		p.stop(b)
		_ = inbox.Close()
		_ = raw.Close()
		if n := tgt.Peak(); n > maxInFlight {
			b.Fatalf("%d calls at the target at once; max_in_flight is %d", n, maxInFlight)
		}
		b.ReportMetric(float64(peak)/(1<<20), "server-RSS-peak-MiB")
		b.ReportMetric(float64(served)/elapsed.Seconds(), "served/s")
		b.Logf("%d requests of %d B queued; server process RSS %.1f MiB when it joined, peak %.1f MiB; in %v it served %d (%d replies), at most %d at the target at once",
			backlog, payload, float64(first)/(1<<20), float64(peak)/(1<<20), elapsed.Round(time.Millisecond),
			served, replies.Load(), tgt.Peak())
	}
}

// queue publishes n demo requests with a long deadline and a message of
// size bytes straight onto topic, as n callers would.
func queue(b *testing.B, bus rpcbus.Bus, topic, replyTo string, n, size int) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	deadline := time.Now().Add(time.Hour).UnixNano()
	var (
		wg   sync.WaitGroup
		next atomic.Int64
		fail atomic.Pointer[error]
	)
	for range 64 {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				msg := fmt.Sprintf("queued-%d-", i)
				msg += strings.Repeat("x", max(0, size-len(msg)))
				payload, _ := proto.Marshal(&demo.Request{Message: msg})
				body, err := codec.EncodeRequest(&vrpcpb.Request{
					Id: "backlog-" + strconv.FormatInt(i, 36), ClientId: "backlog", ReplyTo: replyTo, Target: target,
					Method: "/demo.Demo/Ping", Payload: payload, DeadlineUnixNano: deadline, SentUnixNano: time.Now().UnixNano(),
				})
				if err == nil {
					err = bus.Publish(ctx, topic, &rpcbus.Message{Value: body})
				}
				if err != nil {
					fail.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := fail.Load(); err != nil {
		b.Fatal(*err)
	}
}

// rss returns the resident set size (VmRSS) of process pid.
func rss(b *testing.B, pid int) int64 {
	f, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Skipf("resident memory: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(f))
	for sc.Scan() {
		var kb int64
		if _, err := fmt.Sscanf(sc.Text(), "VmRSS: %d kB", &kb); err == nil {
			return kb << 10
		}
	}
	b.Skip("no VmRSS in /proc/<pid>/status")
	return 0
}
