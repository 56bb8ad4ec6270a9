package faults_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/nextpkg/vrpc/faults"
)

// serverOffline returns how long TestServerOffline keeps the server
// stopped: the minute, or 10 s with -short.
func serverOffline() time.Duration {
	if testing.Short() {
		return 10 * time.Second
	}
	return time.Minute
}

// TestServerOffline is the edge server's side of an outage, on every bus:
// the vRPC server of a target stops for a minute while its callers go on.
// The bus keeps their requests (a Kafka topic, a JetStream stream, a
// durable RabbitMQ queue, a Redis stream with its group, the MQTT group's
// persistent session, the memory bus's topic while the client's bus keeps
// the in-process broker). Calls whose deadline is
// shorter than the minute fail with DEADLINE_EXCEEDED at their deadline,
// and the returning server drops their requests without calling the target
// (Stats().Expired counts them); calls with a longer deadline are served
// once the server is back, once each.
//
// The requests queued must fit what the broker keeps for a group with no
// member: on MQTT, the session of the group's last member for
// session_expiry (5m here; default 5m) and at most Mosquitto's
// max_queued_messages (default 1000) messages.
func TestServerOffline(t *testing.T) {
	t.Parallel()
	subtests(t, func(run func(string, func(*testing.T))) {
		for _, kind := range append(slices.Clone(crossProcessBuses), "memory") {
			run(kind, func(t *testing.T) { testServerOffline(t, kind) })
		}
	})
}

func testServerOffline(t *testing.T, kind string) {
	const expiring, waiting = 200, 100
	offline := serverOffline()
	bus := newTestBus(t, kind, "")
	if kind == "mqtt" {
		bus.cfg.Settings["session_expiry"] = "5m"
	}
	tgt := &faults.Target{Name: "counted"}
	ts := startTarget(t, tgt)
	cfg := bus.serverConfig(ts.Addr(), "in-process")
	// A first server makes the request topic and the group, then stops:
	// from here on the requests queue. (The client opens its bus first: a
	// memory broker lives while a bus uses it.)
	first := startServer(t, cfg)
	c := bus.client(t, "offline")
	first.Stop()
	stopped := time.Now()
	call := faults.DemoCaller(c, target)
	ctx, cancel := context.WithTimeout(context.Background(), offline+3*time.Minute)
	defer cancel()

	short := faults.Start(ctx, faults.Load{Name: "expiring", Calls: expiring, Concurrency: expiring, Deadline: offline / 2}, call)
	long := faults.Start(ctx, faults.Load{Name: "waiting", Calls: waiting, Concurrency: waiting, Deadline: offline + time.Minute}, call)
	expired := faults.Check(short.Wait(), tgt)
	time.Sleep(time.Until(stopped.Add(offline)))
	if n := tgt.Total(); n != 0 {
		t.Fatalf("the target executed %d requests while no server ran", n)
	}
	srv := startServer(t, cfg)
	back := time.Now()
	served := faults.Check(long.Wait(), tgt)
	// A call that ended DEADLINE_EXCEEDED had its request on the bus; one
	// the bus had not taken by then ended UNAVAILABLE ("not sent"), and
	// may or may not be there.
	queued := expired.ByCode[codes.DeadlineExceeded]
	for limit := time.Now().Add(time.Minute); srv.Stats().Expired < uint64(queued); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(limit) {
			break
		}
	}

	t.Logf("%s, server offline %v: with a %v deadline: %v", kind, back.Sub(stopped).Round(time.Millisecond), offline/2, expired)
	t.Logf("with a %v deadline: %v; server: %+v; target executions: %d", offline+time.Minute, served, srv.Stats(), tgt.Total())

	if queued == 0 || queued+expired.ByCode[codes.Unavailable] != expiring {
		t.Errorf("calls with a deadline shorter than the outage: %v; want each DEADLINE_EXCEEDED (or, not sent, UNAVAILABLE), and some queued", expired)
	}
	if served.OK != waiting || served.Duplicated != 0 {
		t.Errorf("calls with a deadline longer than the outage: %v; want every one served once", served)
		for _, o := range served.Failures[:min(len(served.Failures), 10)] {
			t.Logf("  %v", o)
		}
	}
	if got := srv.Stats().Expired; got < uint64(queued) || got > expiring {
		t.Errorf("Stats().Expired = %d, want the %d expired requests queued (at most %d)", got, queued, expiring)
	}
	if n := tgt.Total(); n != waiting {
		t.Errorf("target executed %d requests, want only the %d waiting ones", n, waiting)
	}
	for _, r := range []faults.Report{expired, served} {
		if r.Lost != 0 || r.Wrong != 0 || r.FailedExecuted != 0 {
			t.Errorf("%v: want none lost, wrong or executed", r)
		}
	}
}
