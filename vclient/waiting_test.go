package vclient_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/embedded"
	"github.com/nextpkg/vrpc/vclient"
)

// TestWaiting: the calls in progress show in Waiting and in the client's
// metrics by what they wait for, with the age of the oldest: with no
// server running they wait for their reply; with the broker gone they
// wait for the bus to take their request. Once they end, nothing waits.
func TestWaiting(t *testing.T) {
	t.Parallel()
	broker, err := embedded.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)
	busCfg := rpcbus.Config{Type: "kafka", Brokers: []string{broker.Addr()}}
	// The target's topic exists, as a server that ran once left it, but
	// no server runs.
	admin, err := rpcbus.New(busCfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.(rpcbus.TopicCreator).CreateTopics(limitsContext(t), "vrpc.requests.demo"); err != nil {
		t.Fatal(err)
	}
	if err := admin.Close(); err != nil {
		t.Fatal(err)
	}
	c, err := vclient.New(vclient.Config{ClientID: "waiting", RpcBus: busCfg})
	if err != nil {
		t.Fatal(err)
	}
	// Closing takes a while once the broker is gone (the Kafka bus's
	// close timeouts); parallel tests do not wait for it.
	t.Cleanup(func() { _ = c.Close() })
	reg := prometheus.NewRegistry()
	reg.MustRegister(c.Collector())

	if w := c.Waiting(); w != (vclient.WaitingCalls{}) {
		t.Fatalf("Waiting() before any call = %+v, want nothing", w)
	}
	var calls sync.WaitGroup
	start := func(ctx context.Context, n int, want codes.Code) {
		for i := range n {
			calls.Go(func() {
				_, err := c.Call(ctx, "demo", "/demo.Demo/Ping", pingBytes(t, fmt.Sprint("call ", i)), nil)
				if status.Code(err) != want {
					t.Errorf("call %d: %v, want %v", i, err, want)
				}
			})
		}
	}

	// No server: the requests are on the bus, the calls wait for replies.
	replyCtx, stopReplyCalls := context.WithTimeout(context.Background(), time.Minute)
	defer stopReplyCalls()
	start(replyCtx, 2, codes.Canceled)
	waitUntil(t, "two calls awaiting their reply", func() error {
		w := c.Waiting()
		if w.AwaitingReply != 2 || w.OldestAwaitingReply <= 0 || w.Publishing != 0 {
			return fmt.Errorf("Waiting() = %+v", w)
		}
		return waitingMetrics(reg, map[string]float64{"awaiting_reply": 2, "publishing": 0}, "awaiting_reply")
	})

	// No broker: the bus cannot take the requests.
	broker.Close()
	pubCtx, stopPubCalls := context.WithTimeout(context.Background(), time.Minute)
	defer stopPubCalls()
	start(pubCtx, 3, codes.Canceled)
	waitUntil(t, "three calls waiting for the bus", func() error {
		w := c.Waiting()
		if w.Publishing != 3 || w.OldestPublishing <= 0 || w.AwaitingReply != 2 || w.OldestAwaitingReply < w.OldestPublishing {
			return fmt.Errorf("Waiting() = %+v", w)
		}
		return waitingMetrics(reg, map[string]float64{"awaiting_reply": 2, "publishing": 3}, "awaiting_reply", "publishing")
	})

	stopPubCalls()
	stopReplyCalls()
	calls.Wait()
	if w := c.Waiting(); w != (vclient.WaitingCalls{}) {
		t.Errorf("Waiting() once every call returned = %+v, want nothing", w)
	}
	if err := waitingMetrics(reg, map[string]float64{"awaiting_reply": 0, "publishing": 0}); err != nil {
		t.Errorf("once every call returned: %v", err)
	}
}

// waitingMetrics checks vrpc_client_waiting_calls against want, by state, and
// that vrpc_client_oldest_waiting_seconds is positive for the states of
// aged and zero for the others.
func waitingMetrics(reg *prometheus.Registry, want map[string]float64, aged ...string) error {
	mfs, err := reg.Gather()
	if err != nil {
		return err
	}
	seen := 0
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var state string
			for _, l := range m.GetLabel() {
				if l.GetName() == "state" {
					state = l.GetValue()
				}
			}
			v := m.GetGauge().GetValue()
			switch mf.GetName() {
			case "vrpc_client_waiting_calls":
				seen++
				if v != want[state] {
					return fmt.Errorf("vrpc_client_waiting_calls{state=%q} = %v, want %v", state, v, want[state])
				}
			case "vrpc_client_oldest_waiting_seconds":
				seen++
				old := false
				for _, a := range aged {
					old = old || a == state
				}
				if old != (v > 0) {
					return fmt.Errorf("vrpc_client_oldest_waiting_seconds{state=%q} = %v", state, v)
				}
			}
		}
	}
	if seen != 4 {
		return fmt.Errorf("gathered %d waiting samples, want 4 (two states, two metrics)", seen)
	}
	return nil
}

// waitUntil polls cond until it returns nil (a bound for a loaded machine,
// not a timing assertion).
func waitUntil(t *testing.T, what string, cond func() error) {
	t.Helper()
	ctx := limitsContext(t)
	for {
		err := cond()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("never %s: %v", what, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
