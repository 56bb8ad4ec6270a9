package faults_test

import (
	"context"
	"slices"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/nextpkg/vrpc/faults"
)

// TestBrokerOutage stops the bus's broker while calls flow and starts it
// again on the same address and data: the in-process Kafka (closed), and
// for the other buses a broker the test runs itself (the machine's shared
// ones are never touched): nats-server with JetStream (SIGKILL), a
// RabbitMQ node of its own (SIGTERM: see startRabbitMQ for why not
// SIGKILL), redis-server with an append-only file (SIGKILL) and without
// persistence (SIGKILL), and Mosquitto with persistence (SIGTERM, and
// SIGKILL). The client and the server are not restarted. Calls made during
// the outage must end with UNAVAILABLE or DEADLINE_EXCEEDED by their
// deadline (none lost, none answered wrongly, none executed twice), and
// once the bus is back every call must succeed.
//
// A Redis without persistence comes back without the servers' streams and
// groups, and Mosquitto without the groups' shared subscriptions (see
// startMosquitto): until the server has made them again, the bus reports
// the request topic unknown. The client has published to it before, so it
// takes that for the broker's loss, not for a target no server serves: its
// calls wait for the topic until their deadline, and fail with UNAVAILABLE
// (not UNIMPLEMENTED) like any during the outage if it has not come back
// by then. TestLongOutage is the same outage with deadlines longer than it.
func TestBrokerOutage(t *testing.T) {
	for _, tc := range []struct {
		name, kind string
		start      func(testing.TB) outageBroker
	}{
		{"kafka", "kafka", startEmbeddedKafka},
		{"nats", "nats", startNATS},
		{"amqp", "amqp", startRabbitMQ},
		{"redis", "redis", func(t testing.TB) outageBroker { return startRedis(t, true) }},
		{"redis-without-persistence", "redis", func(t testing.TB) outageBroker { return startRedis(t, false) }},
		{"mqtt", "mqtt", func(t testing.TB) outageBroker { return startMosquitto(t, syscall.SIGTERM) }},
		{"mqtt-SIGKILL", "mqtt", func(t testing.TB) outageBroker { return startMosquitto(t, syscall.SIGKILL) }},
	} {
		t.Run(tc.name, func(t *testing.T) { testBrokerOutage(t, tc.kind, tc.start(t)) })
	}
	t.Run("memory", func(t *testing.T) {
		t.Skip("a memory bus is part of the process that uses it: it has no broker to stop")
	})
}

func testBrokerOutage(t *testing.T, kind string, broker outageBroker) {
	bus := newTestBus(t, kind, broker.Addr())
	tgt := &faults.Target{Name: "counted"}
	ts := startTarget(t, tgt)
	srv := startServer(t, bus.serverConfig(ts.Addr(), "in-process"))
	c := bus.client(t, "broker-outage")
	call := faults.DemoCaller(c, target)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	before := faults.Check(faults.Start(ctx, faults.Load{Name: "before", Calls: 500, Concurrency: 16}, call).Wait(), tgt)
	if before.OK != before.Calls {
		t.Fatalf("before the outage: %v", before)
	}

	// Calls with short deadlines flow through the outage and the recovery.
	flow := faults.Start(ctx, faults.Load{Name: "flow", Concurrency: 16, Deadline: 2 * time.Second}, call)
	eventually(t, "calls flowing", time.Minute, func() bool { return flow.Completed() >= 200 })
	broker.Stop(t)
	down := time.Now()
	failedAtDown := flow.Failed()
	eventually(t, "calls failing in the outage", time.Minute, func() bool { return flow.Failed() >= failedAtDown+32 })
	broker.Start(t)
	up := time.Now()
	// Recovered: calls succeed again.
	okAtUp := flow.Completed() - flow.Failed()
	for limit := time.Now().Add(time.Minute); flow.Completed()-flow.Failed() < okAtUp+64; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(limit) {
			flow.Stop()
			out := flow.Wait()
			t.Logf("server: %+v", srv.Stats())
			for _, o := range out[max(0, len(out)-10):] {
				t.Logf("  %v (made %v after the restart)", o, o.Start.Sub(up).Round(time.Millisecond))
			}
			t.Fatalf("calls did not succeed again within 1m of the restart: %v", faults.Check(out, tgt))
		}
	}
	recovered := time.Now()
	flow.Stop()
	flowOut := flow.Wait()

	after := faults.Check(faults.Start(ctx, faults.Load{Name: "after", Calls: 1000, Concurrency: 16}, call).Wait(), tgt)
	flowRep := faults.Check(flowOut, tgt)
	t.Logf("before: %v", before)
	t.Logf("%s through the outage (broker down %v, calls succeeding again %v after the restart): %v", kind,
		up.Sub(down).Round(time.Millisecond), recovered.Sub(up).Round(time.Millisecond), flowRep)
	t.Logf("after: %v", after)
	t.Logf("server: %+v", srv.Stats())

	if after.OK != after.Calls {
		t.Errorf("after the outage: %v; want every call to succeed", after)
		for _, o := range after.Failures[:min(len(after.Failures), 10)] {
			t.Logf("  %v", o)
		}
	}
	if flowRep.Lost != 0 || flowRep.Wrong != 0 {
		t.Errorf("through the outage: lost %d, wrong %d; want none", flowRep.Lost, flowRep.Wrong)
	}
	if flowRep.Failed == 0 {
		t.Errorf("no call failed while the broker was down")
	}
	var bad []faults.Outcome
	for _, o := range flowRep.Failures {
		switch {
		case o.Code == codes.Unavailable || o.Code == codes.DeadlineExceeded:
		default:
			bad = append(bad, o)
		}
	}
	if len(bad) > 0 {
		want := "UNAVAILABLE or DEADLINE_EXCEEDED"
		t.Errorf("%d calls failed otherwise than with %s; the first:", len(bad), want)
		for _, o := range bad[:min(len(bad), 10)] {
			t.Logf("  %v (made %v after the broker stopped)", o, o.Start.Sub(down).Round(time.Millisecond))
		}
	}
	for _, r := range []faults.Report{before, flowRep, after} {
		if r.Duplicated != 0 {
			t.Errorf("executed more than once: %v", r.Duplicates)
		}
	}
}

// TestTargetOutage stops the gRPC target while calls flow and starts it
// again on the same address, on every bus. Calls made while it is down must
// fail with UNAVAILABLE at once, not wait for their (long) deadline; once
// it is back, every call must succeed, through the same server and client.
func TestTargetOutage(t *testing.T) {
	t.Parallel()
	for _, kind := range append(slices.Clone(crossProcessBuses), "memory") {
		t.Run(kind, func(t *testing.T) { testTargetOutage(t, kind) })
	}
}

func testTargetOutage(t *testing.T, kind string) {
	bus := newTestBus(t, kind, "")
	tgt := &faults.Target{Name: "counted"}
	ts := startTarget(t, tgt)
	addr := ts.Addr()
	startServer(t, bus.serverConfig(addr, "in-process"))
	c := bus.client(t, "target-outage")
	call := faults.DemoCaller(c, target)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	before := faults.Check(faults.Start(ctx, faults.Load{Name: "before", Calls: 300, Concurrency: 16}, call).Wait(), tgt)
	ts.Stop()
	// A long deadline: a call that waited for it would end DEADLINE_EXCEEDED.
	during := faults.Check(faults.Start(ctx, faults.Load{Name: "during", Calls: 200, Concurrency: 16, Deadline: 30 * time.Second}, call).Wait(), tgt)
	var err error
	ts, err = tgt.Listen(addr)
	if err != nil {
		t.Fatalf("restarting the target on %s: %v", addr, err)
	}
	t.Cleanup(ts.Stop)
	// gRPC reconnects after its backoff (1s, growing); calls until then
	// still fail with UNAVAILABLE.
	up := time.Now()
	var probes int
	eventually(t, "a call succeeding after the target's restart", time.Minute, func() bool {
		probes++
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err := call(pctx, "probe")
		return err == nil
	})
	recovered := time.Since(up)
	after := faults.Check(faults.Start(ctx, faults.Load{Name: "after", Calls: 500, Concurrency: 16}, call).Wait(), tgt)

	t.Logf("before: %v", before)
	t.Logf("%s, target down: %v", kind, during)
	var slowest time.Duration
	for _, o := range during.Failures {
		slowest = max(slowest, o.Took)
	}
	t.Logf("slowest failure while down: %v (deadline 30s)", slowest.Round(time.Millisecond))
	t.Logf("target back: first success after %v and %d probes", recovered.Round(time.Millisecond), probes)
	t.Logf("after: %v", after)

	if before.OK != before.Calls || after.OK != after.Calls {
		t.Errorf("before: %v; after: %v; want every call to succeed", before, after)
	}
	if during.ByCode[codes.Unavailable] != during.Calls {
		t.Errorf("target down: %v; want every call to fail with UNAVAILABLE", during)
		for _, o := range during.Failures[:min(len(during.Failures), 10)] {
			t.Logf("  %v", o)
		}
	}
	for _, r := range []faults.Report{before, during, after} {
		if r.Duplicated != 0 || r.Lost != 0 || r.Wrong != 0 {
			t.Errorf("%v: want none lost, wrong or duplicated", r)
		}
	}
}
