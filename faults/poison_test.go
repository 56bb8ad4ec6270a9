package faults_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"

	"github.com/nextpkg/vrpc/codec"
	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/faults"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vclient"
	"github.com/nextpkg/vrpc/vrpcpb"
	"github.com/nextpkg/vrpc/vserver"
)

// TestPoisonReplyAddress sends a server four times as many requests as it
// has slots, each naming a reply address the bus cannot write to, with a
// deadline an hour off, as an attacker would: on Redis a key that is not
// a stream (every XADD fails with WRONGTYPE); on NATS a subject a plain
// subscriber takes and never acknowledges (every publish waits for a
// JetStream acknowledgement that never comes). Each reply must be given up
// after reply_timeout, not the sender's deadline, so that an honest call
// after them is served.
func TestPoisonReplyAddress(t *testing.T) {
	for _, kind := range []string{"redis", "nats"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			bus := newTestBus(t, kind, "")
			tgt := &faults.Target{Name: "poison"}
			cfg := bus.serverConfig(startTarget(t, tgt).Addr(), "in-process")
			cfg.MaxInFlight = 4
			cfg.ReplyTimeout = 100 * time.Millisecond
			srv := startServer(t, cfg)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()

			poison := bus.responses + ".poison"
			switch kind {
			case "redis":
				rdb := redis.NewClient(&redis.Options{Addr: bus.addr})
				defer rdb.Close()
				key := bus.cfg.Settings["key_prefix"].(string) + poison
				if err := rdb.Set(ctx, key, "not a stream", time.Hour).Err(); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = rdb.Del(context.Background(), key).Err() })
			case "nats":
				nc, err := natsgo.Connect("nats://" + bus.addr)
				if err != nil {
					t.Fatal(err)
				}
				defer nc.Close()
				if _, err := nc.Subscribe(poison, func(*natsgo.Msg) {}); err != nil {
					t.Fatal(err)
				}
				if err := nc.Flush(); err != nil {
					t.Fatal(err)
				}
			}

			raw, err := rpcbus.New(bus.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			for i := range 4 * cfg.MaxInFlight {
				b, err := codec.EncodeRequest(&vrpcpb.Request{Id: fmt.Sprintf("poison-%d", i), ClientId: "attacker", ReplyTo: poison,
					Target: target, Method: "/demo.Demo/Ping", Payload: []byte{}, DeadlineUnixNano: time.Now().Add(time.Hour).UnixNano()})
				if err != nil {
					t.Fatal(err)
				}
				if err := raw.Publish(ctx, bus.requestTopic(), &rpcbus.Message{Value: b}); err != nil {
					t.Fatal(err)
				}
			}
			c := bus.client(t, "honest")
			if _, err := demo.NewDemoClient(vclient.NewConn(c, target)).Ping(ctx, &demo.Request{Message: "after the poison"}); err != nil {
				t.Fatalf("a call after %d requests with a poison reply address: %v", 4*cfg.MaxInFlight, err)
			}
			if n := repliesDropped(t, srv, "timeout"); n == 0 {
				t.Error("no reply counted in vrpc_server_replies_dropped_total{reason=timeout}: the poison address was not tried")
			}
		})
	}
}

// repliesDropped is the server's vrpc_server_replies_dropped_total{reason}.
func repliesDropped(t *testing.T, srv *vserver.Server, reason string) float64 {
	t.Helper()
	mfs, err := srv.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "vrpc_server_replies_dropped_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// BenchmarkHostileRequests queues requests built to make a server hold
// memory, starts a server in a process of its own, and samples its
// resident memory while it works through them for 10s: 200 with 4 MiB of
// metadata, and 600 with 2 MiB request ids. The server's limits
// (max_metadata_bytes, max_id_bytes, max_in_flight_bytes, dedup.max_bytes)
// must keep its memory far below what the requests hold together.
//
//	go test -run '^$' -bench HostileRequests -benchtime 1x ./faults/
func BenchmarkHostileRequests(b *testing.B) {
	for _, c := range []struct {
		name     string
		n        int
		metadata int
		id       int
	}{
		{"metadata=4MiB", 200, 4 << 20, 0},
		{"id=2MiB", 600, 0, 2 << 20},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				bus := newTestBus(b, "kafka", "")
				bus.cfg.Settings["max_message_bytes"] = 8 << 20
				tgt := &faults.Target{Name: "hostile"}
				cfg := bus.serverConfig(startTarget(b, tgt).Addr(), "server")
				startServer(b, cfg).Stop() // creates the topic and group
				raw, err := rpcbus.New(bus.cfg)
				if err != nil {
					b.Fatal(err)
				}
				var replies atomic.Int64
				inbox, err := raw.(rpcbus.Inboxer).Inbox(context.Background(), bus.responses+".hostile", func(*rpcbus.Message) { replies.Add(1) })
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				pad := strings.Repeat("x", max(c.metadata, c.id))
				for i := range c.n {
					req := &vrpcpb.Request{Id: fmt.Sprintf("hostile-%d", i), ClientId: "hostile", ReplyTo: inbox.Address(), Target: target,
						Method: "/demo.Demo/Ping", DeadlineUnixNano: time.Now().Add(time.Hour).UnixNano()}
					if c.metadata > 0 {
						req.Metadata = []*vrpcpb.Metadata{{Key: "x-hostile", Values: []string{pad}}}
					} else {
						req.Id += pad
					}
					body, err := codec.EncodeRequest(req)
					if err == nil {
						err = raw.Publish(ctx, bus.requestTopic(), &rpcbus.Message{Value: body})
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				cancel()
				p := startServerProcess(b, "server", cfg)
				start := time.Now()
				peak := rss(b, p.cmd.Process.Pid)
				for time.Since(start) < 10*time.Second {
					time.Sleep(50 * time.Millisecond)
					peak = max(peak, rss(b, p.cmd.Process.Pid))
				}
				p.stop(b)
				_ = inbox.Close()
				_ = raw.Close()
				if n := tgt.Total(); n != 0 {
					b.Errorf("the target ran %d hostile requests", n)
				}
				b.ReportMetric(float64(peak)/(1<<20), "server-RSS-peak-MiB")
				b.Logf("%d requests of %d MiB queued (%d MiB in all); server RSS peak %.1f MiB; %d answered",
					c.n, max(c.metadata, c.id)>>20, c.n*max(c.metadata, c.id)>>20, float64(peak)/(1<<20), replies.Load())
			}
		})
	}
}
