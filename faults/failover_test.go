package faults_test

import (
	"context"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/nextpkg/vrpc/faults"
)

// TestFailover streams calls at two vRPC servers, each a separate OS
// process, sharing the target through one group on each bus (kafka is the
// in-process Kafka; nats, amqp, redis and mqtt the machine's servers, with
// names of the test's own) and the Redis dedup store, and takes one server
// away a third of the way through:
//
//   - SIGKILL: no drain, no acknowledgement, no group leave. What it held
//     goes to the survivor once the bus notices: Kafka when the group
//     declares it dead (session timeout), NATS when ack_wait passes,
//     RabbitMQ at once (its channel closed), Redis once idle for
//     claim_idle, MQTT when the broker publishes its will (will_delay) and
//     the survivor adopts its session. Every call must end with a reply or
//     a status by its deadline, every reply must be right, no request may
//     run twice, and the only failures allowed are the requests the killed
//     server had claimed and not answered (at most its max_in_flight): the
//     survivor finds their claims in Redis and, not knowing whether the
//     target ran them, does not run them again. Their callers get
//     DEADLINE_EXCEEDED.
//   - SIGTERM (graceful Stop): the server drains its calls, acknowledges
//     them and leaves the group; no call may fail.
//
// The memory bus lives inside one process, so it has no failover to test.
func TestFailover(t *testing.T) {
	for _, kind := range crossProcessBuses {
		t.Run(kind, func(t *testing.T) {
			for _, tc := range []struct {
				name string
				hard bool
			}{
				{"SIGKILL", true},
				{"graceful stop", false},
			} {
				t.Run(tc.name, func(t *testing.T) { testFailover(t, kind, tc.hard) })
			}
		})
	}
	t.Run("memory", func(t *testing.T) {
		t.Skip("a memory bus lives in one process: servers in other processes cannot share it")
	})
}

func testFailover(t *testing.T, kind string, hard bool) {
	const (
		calls    = 3000
		deadline = 10 * time.Second
	)
	dedup := redisDedup(t)
	bus := newTestBus(t, kind, "")
	// Each call takes a while at the target, so that the server killed has
	// calls there: requests it claimed, which the target runs, and which
	// it will never answer.
	tgt := &faults.Target{Name: "counted", Delay: 20 * time.Millisecond}
	ts := startTarget(t, tgt)
	procs := map[string]*serverProcess{}
	maxInFlight := 0
	for _, name := range []string{"a", "b"} {
		cfg := bus.serverConfig(ts.Addr(), name)
		cfg.Dedup = dedup
		maxInFlight = cfg.MaxInFlight
		procs[name] = startServerProcess(t, name, cfg)
	}
	c := bus.client(t, "failover")
	call := faults.DemoCaller(c, target)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Both servers take requests before the fault.
	warm := faults.Start(ctx, faults.Load{Name: "warm", Concurrency: 8, Deadline: 30 * time.Second}, call)
	eventually(t, "both servers forwarding calls", time.Minute, func() bool {
		s := tgt.Served()
		return s["a"] > 0 && s["b"] > 0
	})
	warm.Stop()
	warmRep := faults.Check(warm.Wait(), tgt)

	stream := faults.Start(ctx, faults.Load{Name: "call", Calls: calls, Concurrency: 32, Deadline: deadline}, call)
	eventually(t, "a third of the calls", time.Minute, func() bool { return stream.Completed() >= calls/3 })
	if hard {
		// On NATS and Redis a member pulls as many requests as it has room
		// for, so at a given moment the other may hold every call in
		// flight: kill a while it has one at the target.
		eventually(t, "server a forwarding a call", time.Minute, func() bool { return tgt.RunningBy("a") > 0 })
	}
	before := tgt.Served()
	if hard {
		procs["a"].kill(t)
	} else {
		procs["a"].stop(t)
	}
	faultAt := stream.Completed()
	rep := faults.Check(stream.Wait(), tgt)
	after := tgt.Served()
	// The survivor's counters, from its graceful stop.
	procs["b"].stop(t)
	redelivered := statField(procs["b"].out.String(), "Duplicates")

	t.Logf("warm-up: %v", warmRep)
	t.Logf("%s: %v", kind, rep)
	t.Logf("server a forwarded %d executions before the fault, %d after; b %d before, %d after; fault after %d calls",
		before["a"], after["a"]-before["a"], before["b"], after["b"]-before["b"], faultAt)
	t.Logf("server b answered %d deliveries of requests already served (or claimed) from the dedup store", redelivered)
	for _, o := range rep.Failures {
		t.Logf("failed: %v; executed %d times, by %q", o, tgt.Executions(o.Msg), tgt.ExecutedBy(o.Msg))
	}

	if rep.Calls != calls {
		t.Errorf("%d calls ended, want %d", rep.Calls, calls)
	}
	if rep.Lost != 0 || rep.Wrong != 0 || warmRep.Lost != 0 || warmRep.Wrong != 0 {
		t.Errorf("lost %d, wrong %d (warm-up: lost %d, wrong %d); want none", rep.Lost, rep.Wrong, warmRep.Lost, warmRep.Wrong)
	}
	if rep.Duplicated != 0 || warmRep.Duplicated != 0 {
		t.Errorf("executed more than once: %v %v; want none with the shared dedup store", rep.Duplicates, warmRep.Duplicates)
	}
	if warmRep.Failed != 0 {
		t.Errorf("warm-up: %v; want no failures before the fault", warmRep)
	}
	if after["b"] <= before["b"] {
		t.Errorf("the surviving server forwarded nothing after the fault")
	}
	if !hard {
		if rep.Failed != 0 {
			t.Errorf("%d calls failed across a graceful stop; want none", rep.Failed)
		}
		return
	}
	// A killed server leaves the requests it held unacknowledged (on Kafka,
	// all since its last commit) to be delivered again: without them this
	// test would prove nothing about duplicates.
	if redelivered == 0 {
		t.Errorf("no request was delivered again after the kill")
	}
	if rep.Failed > maxInFlight {
		t.Errorf("%d calls failed; want at most the killed server's max_in_flight, %d", rep.Failed, maxInFlight)
	}
	for _, o := range rep.Failures {
		if o.Code != codes.DeadlineExceeded && o.Code != codes.Unavailable {
			t.Errorf("%v: want DEADLINE_EXCEEDED or UNAVAILABLE", o)
		}
		// Only the killed server's claims may be left unanswered: a call
		// the survivor ran must have been answered.
		if slices.Contains(tgt.ExecutedBy(o.Msg), "b") {
			t.Errorf("%v: executed by the surviving server, yet not answered", o)
		}
	}
}

// statField reads a counter from the Stats a server process prints when it
// stops ("{Expired:0 DeadLetters:0 Duplicates:12}"); -1 if absent.
func statField(out, name string) int {
	m := regexp.MustCompile(`\b` + name + `:(\d+)`).FindStringSubmatch(out)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(m[1])
	return n
}
