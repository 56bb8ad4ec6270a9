package faults_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"google.golang.org/grpc/codes"

	"github.com/nextpkg/vrpc/faults"
	"github.com/nextpkg/vrpc/rpcbus/kafka"
)

// TestBrokerOutage stops the Kafka broker while calls flow and starts it
// again on the same address and data directory. The client and the server
// are not restarted. Calls made during the outage must end with
// UNAVAILABLE or DEADLINE_EXCEEDED by their deadline (none lost, none
// answered wrongly, none executed twice), and once the bus is back every
// call must succeed.
func TestBrokerOutage(t *testing.T) {
	addr, dir := freeAddr(t), t.TempDir()
	start := func() *kafka.Embedded {
		t.Helper()
		e, err := kafka.StartEmbedded(addr, kfake.DataDir(dir), kfake.GroupMinSessionTimeout(500*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	broker := start()
	t.Cleanup(func() { broker.Close() })
	tgt := &faults.Target{Name: "counted"}
	ts := startTarget(t, tgt)
	srv := startServer(t, serverConfig(addr, ts.Addr(), "in-process"))
	c := newClient(t, addr, "faults-broker-outage")
	call := faults.DemoCaller(c, target)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	before := faults.Check(faults.Start(ctx, faults.Load{Name: "before", Calls: 500, Concurrency: 16}, call).Wait(), tgt)
	if before.OK != before.Calls {
		t.Fatalf("before the outage: %v", before)
	}

	// Calls with short deadlines flow through the outage and the recovery.
	flow := faults.Start(ctx, faults.Load{Name: "flow", Concurrency: 16, Deadline: 2 * time.Second}, call)
	eventually(t, "calls flowing", time.Minute, func() bool { return flow.Completed() >= 200 })
	broker.Close()
	down := time.Now()
	failedAtDown := flow.Failed()
	eventually(t, "calls failing in the outage", time.Minute, func() bool { return flow.Failed() >= failedAtDown+32 })
	broker = start()
	up := time.Now()
	// Recovered: calls succeed again.
	okAtUp := flow.Completed() - flow.Failed()
	eventually(t, "calls succeeding after the restart", time.Minute, func() bool {
		return flow.Completed()-flow.Failed() >= okAtUp+64
	})
	recovered := time.Now()
	flow.Stop()
	flowOut := flow.Wait()

	after := faults.Check(faults.Start(ctx, faults.Load{Name: "after", Calls: 1000, Concurrency: 16}, call).Wait(), tgt)
	flowRep := faults.Check(flowOut, tgt)
	t.Logf("before: %v", before)
	t.Logf("through the outage (broker down %v, calls succeeding again %v after the restart): %v",
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
	for _, o := range flowRep.Failures {
		if o.Code != codes.Unavailable && o.Code != codes.DeadlineExceeded {
			t.Errorf("%v: want UNAVAILABLE or DEADLINE_EXCEEDED", o)
		}
	}
	for _, r := range []faults.Report{before, flowRep, after} {
		if r.Duplicated != 0 {
			t.Errorf("executed more than once: %v", r.Duplicates)
		}
	}
}

// TestTargetOutage stops the gRPC target while calls flow and starts it
// again on the same address. Calls made while it is down must fail with
// UNAVAILABLE at once, not wait for their (long) deadline; once it is back,
// every call must succeed, through the same server and client.
func TestTargetOutage(t *testing.T) {
	t.Parallel()
	broker := startKafka(t)
	tgt := &faults.Target{Name: "counted"}
	ts := startTarget(t, tgt)
	addr := ts.Addr()
	startServer(t, serverConfig(broker, addr, "in-process"))
	c := newClient(t, broker, "faults-target-outage")
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
	t.Logf("target down: %v", during)
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
