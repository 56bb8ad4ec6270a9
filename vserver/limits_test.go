package vserver_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/nextpkg/vrpc/codec"
	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vclient"
	"github.com/nextpkg/vrpc/vrpcpb"
	"github.com/nextpkg/vrpc/vserver"
)

// metricValue is the value of the server's metric name with the label
// (one name=value pair, or none), 0 when absent.
func metricValue(t *testing.T, s *vserver.Server, name, label, value string) float64 {
	t.Helper()
	mfs, err := s.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label == "" || hasLabel(m, label, value) {
				if c := m.GetCounter(); c != nil {
					return c.GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// poisonInbox is a reply address whose handler never returns: on the
// memory bus, with the server's max_backlog at 2, a reply to it fails
// (the backlog is full) however often the server tries, as a NATS subject
// no one drains or a Redis key that is not a stream does.
func poisonInbox(t *testing.T, raw rpcbus.Bus) string {
	t.Helper()
	release := make(chan struct{})
	inbox, err := raw.(rpcbus.Inboxer).Inbox(testContext(t), "vrpc.responses.poison", func(*rpcbus.Message) { <-release })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := inbox.Close(); err != nil {
			t.Errorf("inbox Close: %v", err)
		}
	})
	t.Cleanup(func() { close(release) }) // first: Close waits for the handler
	return inbox.Address()
}

// publishPoison publishes n requests that ask for their reply at addr, with
// a deadline an hour off, as an attacker chooses.
func publishPoison(t *testing.T, raw rpcbus.Bus, addr string, n int) {
	t.Helper()
	payload := mustMarshal(t, &demo.Request{Message: "poison"})
	for i := range n {
		b, err := codec.EncodeRequest(&vrpcpb.Request{
			Id: fmt.Sprintf("poison-%d", i), ClientId: "attacker", ReplyTo: addr, Target: "demo",
			Method: "/demo.Demo/Ping", Payload: payload, DeadlineUnixNano: time.Now().Add(time.Hour).UnixNano(),
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := raw.Publish(testContext(t), "vrpc.requests.demo", &rpcbus.Message{Value: b}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPoisonReplyAddress: requests whose reply address cannot be written
// to, more of them than the server has slots, must not keep the server
// from serving others: each reply is given up after reply_timeout,
// counted and logged, and the slot freed.
func TestPoisonReplyAddress(t *testing.T) {
	t.Parallel()
	broker := rpcbus.Config{Type: "memory", Brokers: []string{"poison-reply"}}
	serverBus := broker
	serverBus.Settings = map[string]any{"max_backlog": 2}
	cfg := serverConfig(serverBus, startDemo(t, "demo-1"))
	cfg.MaxInFlight = 4
	cfg.ReplyTimeout = 50 * time.Millisecond
	srv := startServer(t, cfg)
	raw := openBus(t, broker)

	publishPoison(t, raw, poisonInbox(t, raw), 4*cfg.MaxInFlight)
	client := newClient(t, broker, "honest")
	resp, err := demo.NewDemoClient(vclient.NewConn(client, "demo")).Ping(testContext(t), &demo.Request{Message: "after the poison"})
	if err != nil {
		t.Fatalf("a call after %d poison requests: %v", 4*cfg.MaxInFlight, err)
	}
	if resp.GetMessage() == "" {
		t.Fatalf("empty reply %+v", resp)
	}
	if n := metricValue(t, srv, "vrpc_server_replies_dropped_total", "reason", "timeout"); n == 0 {
		t.Error("no reply counted in vrpc_server_replies_dropped_total{reason=timeout}")
	}
}

// TestStopWithStuckReplies: Stop returns after drain_timeout even while
// replies are being retried to addresses that take nothing, however long
// reply_timeout is.
func TestStopWithStuckReplies(t *testing.T) {
	t.Parallel()
	broker := rpcbus.Config{Type: "memory", Brokers: []string{"stuck-replies"}}
	serverBus := broker
	serverBus.Settings = map[string]any{"max_backlog": 2}
	cfg := serverConfig(serverBus, startDemo(t, "demo-1"))
	cfg.MaxInFlight = 4
	cfg.ReplyTimeout = time.Hour
	cfg.DrainTimeout = 100 * time.Millisecond
	srv := startServer(t, cfg)
	raw := openBus(t, broker)
	publishPoison(t, raw, poisonInbox(t, raw), 8)

	ctx := testContext(t)
	for srv.Debug(ctx).InFlight < int64(cfg.MaxInFlight) {
		if ctx.Err() != nil {
			t.Fatal("the poison requests never filled the server's slots")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stopped := make(chan struct{})
	go func() { srv.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
		t.Fatal("Stop did not return: replies stuck with reply_timeout 1h hold it past drain_timeout")
	}
}

// TestMetadataOverLimit: a call with more metadata than
// max_metadata_bytes is answered RESOURCE_EXHAUSTED, not forwarded.
func TestMetadataOverLimit(t *testing.T) {
	t.Parallel()
	bus := rpcbus.Config{Type: "memory", Brokers: []string{"metadata-limit"}}
	cfg := serverConfig(bus, startDemo(t, "demo-1"))
	cfg.MaxMetadataBytes = 4 << 10
	srv := startServer(t, cfg)
	client := newClient(t, bus, "big-metadata")
	ctx := metadata.AppendToOutgoingContext(testContext(t), "x-big", strings.Repeat("v", 8<<10))
	_, err := demo.NewDemoClient(vclient.NewConn(client, "demo")).Ping(ctx, &demo.Request{Message: "m"})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("8 KiB of metadata over max_metadata_bytes 4096: got %v, want RESOURCE_EXHAUSTED", err)
	}
	if n := metricValue(t, srv, "vrpc_server_refused_total", "limit", "max_metadata_bytes"); n != 1 {
		t.Errorf("refused_total{limit=max_metadata_bytes} = %v, want 1", n)
	}
}

// TestDeadLetterBounds: a dead-letter topic that refuses messages for a
// while (here: its backlog is full) costs each message dead_letter_timeout
// at most. The message is then left unacknowledged, so that it is not
// lost, counted, and its worker goes on to the next request.
func TestDeadLetterBounds(t *testing.T) {
	t.Parallel()
	broker := rpcbus.Config{Type: "memory", Brokers: []string{"dead-letter-bounds"}}
	serverBus := broker
	serverBus.Settings = map[string]any{"max_backlog": 1} // the dead-letter topic keeps one
	cfg := serverConfig(serverBus, startDemo(t, "demo-1"))
	cfg.MaxInFlight = 4
	cfg.DeadLetterTimeout = 50 * time.Millisecond
	// Stop does not wait out drain_timeout for the deliveries left
	// unacknowledged, which no one will acknowledge: it gives them back to
	// the group once everything else is finished.
	cfg.DrainTimeout = time.Hour
	srv := startServer(t, cfg)
	raw := openBus(t, broker)
	ctx := testContext(t)
	for range 3 {
		if err := raw.Publish(ctx, "vrpc.requests.demo", &rpcbus.Message{Value: []byte("\xff not an envelope")}); err != nil {
			t.Fatal(err)
		}
	}
	for metricValue(t, srv, "vrpc_server_unacknowledged", "", "") < 2 {
		if ctx.Err() != nil {
			t.Fatalf("the dead letters that could not be set aside were not left unacknowledged (%v)", metricValue(t, srv, "vrpc_server_unacknowledged", "", ""))
		}
		time.Sleep(10 * time.Millisecond)
	}
	client := newClient(t, broker, "after-dead-letters")
	if _, err := demo.NewDemoClient(vclient.NewConn(client, "demo")).Ping(ctx, &demo.Request{Message: "after"}); err != nil {
		t.Fatalf("a call after the dead letters: %v", err)
	}
	if n := metricValue(t, srv, "vrpc_server_dead_letter_failures_total", "reason", "timeout"); n != 2 {
		t.Errorf("dead_letter_failures_total{reason=timeout} = %v, want 2", n)
	}
	if n := srv.Stats().DeadLetters; n != 3 {
		t.Errorf("Stats().DeadLetters = %d, want 3", n)
	}
	stopped := make(chan struct{})
	go func() { srv.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
		t.Fatal("Stop did not return: it waits out drain_timeout (1h) for deliveries no one will acknowledge")
	}
}
