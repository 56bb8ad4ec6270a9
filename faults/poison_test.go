package faults_test

import (
	"context"
	"fmt"
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
