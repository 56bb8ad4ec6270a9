package faults_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nextpkg/vrpc/codec"
	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/faults"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vclient"
	"github.com/nextpkg/vrpc/vrpcpb"
)

// TestPoisonReplyAddress sends a server four times as many requests as it
// has slots, each naming a reply address the bus cannot write to, with a
// deadline an hour off, as an attacker would: on Redis a key that is not
// a stream (every XADD fails with WRONGTYPE). Each reply must be given up
// after reply_timeout, not the sender's deadline, so that an honest call
// after them is served.
func TestPoisonReplyAddress(t *testing.T) {
	for _, kind := range []string{"redis"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			bus := newTestBus(t, kind, "")
			tgt := &faults.Target{Name: "poison"}
			cfg := bus.serverConfig(startTarget(t, tgt).Addr(), "in-process")
			cfg.MaxInFlight = 4
			cfg.ReplyTimeout = 100 * time.Millisecond
			startServer(t, cfg)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()

			poison := bus.responses + ".poison"
			rdb := redis.NewClient(&redis.Options{Addr: bus.addr})
			defer rdb.Close()
			key := bus.cfg.Settings["key_prefix"].(string) + poison
			if err := rdb.Set(ctx, key, "not a stream", time.Hour).Err(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = rdb.Del(context.Background(), key).Err() })

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
		})
	}
}
