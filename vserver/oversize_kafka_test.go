package vserver_test

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/nextpkg/vrpc/codec"
	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vclient"
	"github.com/nextpkg/vrpc/vrpcpb"
)

// TestOversizedKafkaRecord: a record far over the server's
// max_message_size, compressed by its producer so that the broker takes
// it, reaches the server whole. It is answered RESOURCE_EXHAUSTED without
// being decoded; too large to set aside on the server's bus, it is
// skipped (logged and counted), and the partition's commit moves past it:
// the server serves what comes after, and the group's lag goes to 0.
func TestOversizedKafkaRecord(t *testing.T) {
	t.Parallel()
	busCfg := startKafka(t)
	cfg := serverConfig(busCfg, startDemo(t, "demo-1"))
	cfg.MaxMessageSize = 64 << 10
	srv := startServer(t, cfg)
	ctx := testContext(t)

	producerCfg := busCfg
	producerCfg.Settings = map[string]any{"compression": "gzip", "max_message_bytes": 32 << 20}
	producer := openBus(t, producerCfg)
	replies := make(chan *vrpcpb.Response, 1)
	inbox, err := producer.(rpcbus.Inboxer).Inbox(ctx, "vrpc.responses.oversize", func(m *rpcbus.Message) {
		if resp, err := codec.DecodeResponse(m.Value); err == nil {
			replies <- resp
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = inbox.Close() })

	// 8 MiB of one byte: over the server's bus's max_message_bytes too
	// (5 MiB), so it cannot be dead-lettered; gzip makes it a few KiB.
	b, err := codec.EncodeRequest(&vrpcpb.Request{Id: "oversized", ClientId: "c", ReplyTo: inbox.Address(), Target: "demo",
		Method: "/demo.Demo/Ping", Payload: make([]byte, 8<<20), DeadlineUnixNano: time.Now().Add(time.Minute).UnixNano()})
	if err != nil {
		t.Fatal(err)
	}
	if err := producer.Publish(ctx, "vrpc.requests.demo", &rpcbus.Message{Value: b}); err != nil {
		t.Fatal(err)
	}
	select {
	case resp := <-replies:
		if resp.Id != "oversized" || codes.Code(resp.GetStatus().GetCode()) != codes.ResourceExhausted {
			t.Fatalf("reply %s %v, want RESOURCE_EXHAUSTED", resp.Id, resp.GetStatus())
		}
	case <-ctx.Done():
		t.Fatal("no reply to the oversized record")
	}

	client := newClient(t, busCfg, "after-oversize")
	if _, err := demo.NewDemoClient(vclient.NewConn(client, "demo")).Ping(ctx, &demo.Request{Message: "after"}); err != nil {
		t.Fatalf("a call after the oversized record: %v", err)
	}
	if n := metricValue(t, srv, "vrpc_server_dead_letter_failures_total", "reason", "too_large"); n != 1 {
		t.Errorf("dead_letter_failures_total{reason=too_large} = %v, want 1", n)
	}
	if n := metricValue(t, srv, "vrpc_server_refused_total", "limit", "max_message_size"); n != 1 {
		t.Errorf("refused_total{limit=max_message_size} = %v, want 1", n)
	}
	// The commit moved past it: nothing of the request topic is left.
	for {
		lag := int64(0)
		info := srv.Debug(ctx)
		if info.Consumer == nil {
			t.Fatal("the kafka subscription reports no status")
		}
		for _, p := range info.Consumer.Partitions {
			if p.Topic == "vrpc.requests.demo" && p.Assigned {
				lag += p.Lag
			}
		}
		if lag == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("lag on vrpc.requests.demo stays %d: the commit does not move past the oversized record", lag)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
