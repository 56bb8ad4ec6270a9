package faults_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nextpkg/vrpc/faults"
	"github.com/nextpkg/vrpc/vclient"
)

// longOutage returns how long TestLongOutage keeps the broker down and the
// deadline of the calls made meanwhile: the 30 s and 60 s, or 5 s
// and 30 s with -short (RabbitMQ alone takes 5 to 30 s to stop and start on
// a loaded machine).
func longOutage() (down, deadline time.Duration) {
	if testing.Short() {
		return 5 * time.Second, 30 * time.Second
	}
	return 30 * time.Second, 60 * time.Second
}

// TestLongOutage is the promise users buy vRPC for: a call made while the
// bus is down, with a deadline longer than the outage, completes once the
// bus is back. On every bus, with a broker the test runs itself (as
// TestBrokerOutage), the vRPC server and client running throughout: the
// broker is stopped, calls with a 60 s deadline are made, the broker stays
// down 30 s and is started again on its address and data (its start-up
// time, measured at its first start, counted in, up to two thirds of it:
// RabbitMQ takes from 5 to over 30 s to start on a loaded machine). Every
// call must succeed, executed once at the target.
//
// The calls that wait meanwhile are bounded: the client's max_pending and
// max_pending_bytes count them from the moment they are made, so one more
// call, or one more byte, fails at once with RESOURCE_EXHAUSTED naming the
// setting, and never reaches the target.
//
// The brokers that lose state in a restart (Redis without persistence:
// every stream; Mosquitto: the shared subscriptions) are included: the
// servers make what was lost again, and the client goes on publishing
// until they have.
func TestLongOutage(t *testing.T) {
	t.Parallel()
	cases := []struct {
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
	}
	subtests(t, func(run func(string, func(*testing.T))) {
		for _, tc := range cases {
			run(tc.name, func(t *testing.T) {
				begin := time.Now()
				broker := tc.start(t)
				testLongOutage(t, tc.kind, broker, time.Since(begin))
			})
		}
	})
	t.Run("memory", func(t *testing.T) {
		t.Skip("a memory bus is part of the process that uses it: it has no broker to stop")
	})
}

// The bounds of TestLongOutage's clients: the calls waiting through the
// outage fill them exactly.
const (
	outageCalls = 32
	// outagePadded calls of outagePad bytes fill the second client's
	// max_pending_bytes (each call counts its payload, method and target).
	outagePadded = 4
	outagePad    = 1000
	outageBytes  = outagePadded * (outagePad + 64)
)

// testLongOutage runs the scenario on broker, which took boot to start.
func testLongOutage(t *testing.T, kind string, broker outageBroker, boot time.Duration) {
	down, deadline := longOutage()
	bus := newTestBus(t, kind, broker.Addr())
	tgt := &faults.Target{Name: "counted"}
	ts := startTarget(t, tgt)
	srv := startServer(t, bus.serverConfig(ts.Addr(), "in-process"))
	c := bus.clientWith(t, "long-outage", func(cfg *vclient.Config) { cfg.MaxPending = outageCalls })
	cb := bus.clientWith(t, "long-outage-bytes", func(cfg *vclient.Config) {
		cfg.MaxMessageBytes, cfg.MaxPendingBytes = 2*outagePad, outageBytes
	})
	call, callBytes := faults.DemoCaller(c, target), faults.DemoCaller(cb, target)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	before := faults.Check(faults.Start(ctx, faults.Load{Name: "before", Calls: 100, Concurrency: 8}, call).Wait(), tgt)
	if before.OK != before.Calls {
		t.Fatalf("before the outage: %v", before)
	}
	if _, err := callBytes(ctx, "before-bytes"); err != nil {
		t.Fatalf("before the outage, the second client: %v", err)
	}

	broker.Stop(t)
	stopped := time.Now()
	during := faults.Start(ctx, faults.Load{Name: "during", Calls: outageCalls, Concurrency: outageCalls, Deadline: deadline}, call)
	var padded sync.WaitGroup
	paddedErr := make([]error, outagePadded)
	pad := strings.Repeat("p", outagePad)
	for i := range outagePadded {
		padded.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, deadline)
			defer cancel()
			msg := fmt.Sprintf("padded-%d-%s", i, pad)
			reply, err := callBytes(pctx, msg)
			if err == nil && reply != msg {
				err = fmt.Errorf("reply %.20q is not the call's own", reply)
			}
			paddedErr[i] = err
		})
	}
	for limit := time.Now().Add(time.Minute); c.Pending() < outageCalls || cb.Pending() < outagePadded; time.Sleep(20 * time.Millisecond) {
		if during.Failed() > 0 || time.Now().After(limit) {
			during.Stop()
			t.Fatalf("calls waiting for the stopped broker: %d and %d of %d and %d (%v)", c.Pending(), cb.Pending(),
				outageCalls, outagePadded, faults.Check(during.Wait(), tgt))
		}
	}

	// Full: one more call fails at once, and names the setting.
	overCount := overLimit(ctx, t, call, "over-count", "max_pending "+fmt.Sprint(outageCalls))
	overBytes := overLimit(ctx, t, callBytes, "over-bytes-"+pad[:100], "max_pending_bytes "+fmt.Sprint(outageBytes))

	time.Sleep(time.Until(stopped.Add(down - min(boot, down*2/3))))
	broker.Start(t)
	up := time.Now()
	out := during.Wait()
	padded.Wait()
	last := time.Since(up)
	rep := faults.Check(out, tgt)
	var slowest time.Duration
	for _, o := range out {
		slowest = max(slowest, o.Took)
	}
	after := faults.Check(faults.Start(ctx, faults.Load{Name: "after", Calls: 200, Concurrency: 16}, call).Wait(), tgt)

	t.Logf("%s: broker down %v (it starts in %v); %d calls (deadline %v) made while it was down: %v; the slowest took %v, the last ended %v after the restart",
		kind, up.Sub(stopped).Round(time.Millisecond), boot.Round(time.Millisecond), outageCalls, deadline, rep, slowest.Round(time.Millisecond), last.Round(time.Millisecond))
	t.Logf("over the bounds meanwhile: %v; %v", overCount, overBytes)
	t.Logf("after: %v; server: %+v", after, srv.Stats())

	if rep.OK != outageCalls || rep.Duplicated != 0 {
		t.Errorf("calls made while the broker was down: %v; want every one to succeed once it is back, executed once", rep)
		for _, o := range rep.Failures[:min(len(rep.Failures), 10)] {
			t.Logf("  %v (made %v after the broker stopped)", o, o.Start.Sub(stopped).Round(time.Millisecond))
		}
	}
	for i, err := range paddedErr {
		msg := fmt.Sprintf("padded-%d-%s", i, pad)
		if n := tgt.Executions(msg); err != nil || n != 1 {
			t.Errorf("padded call %d: %v, executed %d times; want it to succeed, executed once", i, err, n)
		}
	}
	if after.OK != after.Calls || after.Duplicated != 0 {
		t.Errorf("after the outage: %v", after)
	}
	for _, msg := range []string{"over-count", "over-bytes-" + pad[:100]} {
		if n := tgt.Executions(msg); n != 0 {
			t.Errorf("the call refused over the bound (%s) was executed %d times", msg[:min(len(msg), 12)], n)
		}
	}
}

// overLimit makes one call that the client's bounds must refuse at once,
// with RESOURCE_EXHAUSTED and a message naming setting, and returns how it
// ended.
func overLimit(ctx context.Context, t *testing.T, call faults.Caller, msg, setting string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err := call(ctx, msg)
	took := time.Since(start)
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), setting) {
		t.Errorf("a call over the client's bound: %v (after %v); want RESOURCE_EXHAUSTED at once, naming %q", err, took.Round(time.Millisecond), setting)
	}
	return fmt.Sprintf("%s after %v: %s", st.Code(), took.Round(time.Microsecond), st.Message())
}
