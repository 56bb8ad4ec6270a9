package vserver_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/codec"
	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vrpcpb"
	"github.com/nextpkg/vrpc/vserver"
	_ "github.com/nextpkg/vrpc/vserver/redisdedup" // dedup.store redis
)

func TestMemoryDedup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := vserver.NewMemoryDedup(2)
	if _, claimed, _ := m.Claim(ctx, "a", time.Minute); !claimed {
		t.Fatal("first claim of a not granted")
	}
	if reply, claimed, _ := m.Claim(ctx, "a", time.Minute); claimed || reply != nil {
		t.Fatalf("a in progress: got %q, %v", reply, claimed)
	}
	_ = m.Done(ctx, "a", []byte("reply-a"), time.Minute)
	if reply, claimed, _ := m.Claim(ctx, "a", time.Minute); claimed || string(reply) != "reply-a" {
		t.Fatalf("a done: got %q, %v", reply, claimed)
	}
	// Released claims are served again; done ones are not released.
	m.Claim(ctx, "b", time.Minute)
	_ = m.Release(ctx, "b")
	if _, claimed, _ := m.Claim(ctx, "b", time.Minute); !claimed {
		t.Fatal("released b not claimable")
	}
	_ = m.Release(ctx, "a")
	if _, claimed, _ := m.Claim(ctx, "a", time.Minute); claimed {
		t.Fatal("Release dropped a finished entry")
	}
	// Bounded: a third key evicts the least recently used (b).
	m.Claim(ctx, "c", time.Minute)
	if m.Len() != 2 {
		t.Fatalf("Len %d, want 2", m.Len())
	}
	if _, claimed, _ := m.Claim(ctx, "b", time.Minute); !claimed {
		t.Fatal("b should have been evicted")
	}
	// Expired entries are served again.
	m.Claim(ctx, "d", -time.Second)
	if _, claimed, _ := m.Claim(ctx, "d", time.Minute); !claimed {
		t.Fatal("expired d not claimable")
	}
}

// TestMemoryDedupChurn: a full store, its slots reused over and over,
// keeps exactly the most recently used entries with their replies, in
// order, however many keys have passed through it.
func TestMemoryDedupChurn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const size, keys = 100, 10000
	m := vserver.NewMemoryDedup(size)
	key := func(i int) string { return fmt.Sprintf("client\x00req-%d\x00inbox", i) }
	released := func(i int) bool { return i%3 == 1 } // the last key is not
	for i := range keys {
		if _, claimed, _ := m.Claim(ctx, key(i), time.Minute); !claimed {
			t.Fatalf("new key %d not claimed", i)
		}
		if released(i) {
			_ = m.Release(ctx, key(i)) // served by no one: gone again
			continue
		}
		_ = m.Done(ctx, key(i), []byte(key(i)), time.Minute)
		// A key served a while ago is used again: the most recent now.
		if old := i - size/2; old >= 0 && !released(old) && i%10 == 0 {
			if reply, claimed, _ := m.Claim(ctx, key(old), time.Minute); claimed || string(reply) != key(old) {
				t.Fatalf("key %d at %d: reply %q, claimed %v", old, i, reply, claimed)
			}
		}
	}
	if m.Len() != size {
		t.Fatalf("Len %d, want %d", m.Len(), size)
	}
	// The last size/2 served keys are surely among the entries kept; the
	// first ones are long gone.
	served := 0
	for i := keys - 1; served < size/2; i-- {
		if released(i) {
			continue
		}
		served++
		if reply, claimed, _ := m.Claim(ctx, key(i), time.Minute); claimed || string(reply) != key(i) {
			t.Fatalf("recent key %d: reply %q, claimed %v", i, reply, claimed)
		}
	}
	if _, claimed, _ := m.Claim(ctx, key(0), time.Minute); !claimed {
		t.Fatal("key 0 still held after 10000 others")
	}
}

// countingDemo is the demo target counting its executions.
type countingDemo struct {
	demo.UnimplementedDemoServer
	calls atomic.Int64
}

func (c *countingDemo) Ping(_ context.Context, r *demo.Request) (*demo.Response, error) {
	c.calls.Add(1)
	return &demo.Response{Message: r.Message}, nil
}

func startCountingDemo(t *testing.T) (*countingDemo, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cd := &countingDemo{}
	srv := grpc.NewServer()
	demo.RegisterDemoServer(srv, cd)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return cd, lis.Addr().String()
}

// redisAddr returns the machine's Redis, or skips (fails under CI) when
// it is not reachable.
func redisAddr(t *testing.T) string {
	t.Helper()
	const addr = "127.0.0.1:6379"
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		msg := fmt.Sprintf("Redis at %s: %v (start it: redis-server --daemonize yes --port 6379 --save '' --appendonly no)", addr, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return addr
}

// TestDuplicateDeliveryExecutesOnce publishes the same request envelope
// several times, as a redelivery or a client's re-publish would: the target
// runs it once and every delivery is answered with the same reply. With the
// Redis store, two servers in one group share what they served.
func TestDuplicateDeliveryExecutesOnce(t *testing.T) {
	t.Parallel()
	for _, store := range []string{"memory", "redis"} {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			dedup := vrpc.DedupConf{Store: store}
			servers := 1
			if store == "redis" {
				dedup.Redis = vrpc.RedisConf{Addr: redisAddr(t), Prefix: fmt.Sprintf("vrpc:test:%d:", time.Now().UnixNano())}
				servers = 2
			}
			busCfg := startKafka(t)
			cd, addr := startCountingDemo(t)
			var srvs []*vserver.Server
			for range servers {
				cfg := serverConfig(busCfg, addr)
				cfg.Dedup = dedup
				srvs = append(srvs, startServer(t, cfg))
			}
			ctx := testContext(t)
			raw := openBus(t, busCfg)
			replies := make(chan *vrpcpb.Response, 16)
			inbox, err := raw.(rpcbus.Inboxer).Inbox(ctx, "vrpc.responses.dup-caller", func(m *rpcbus.Message) {
				if resp, err := codec.DecodeResponse(m.Value); err == nil {
					replies <- resp
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = inbox.Close() })

			payload, _ := proto.Marshal(&demo.Request{Message: "once"})
			body, err := codec.EncodeRequest(&vrpcpb.Request{
				Id: "dup-1", ClientId: "dup-caller", ReplyTo: inbox.Address(), Target: "demo",
				Method: "/demo.Demo/Ping", Payload: payload,
				DeadlineUnixNano: time.Now().Add(time.Minute).UnixNano(),
			})
			if err != nil {
				t.Fatal(err)
			}
			const copies = 6
			for range copies {
				if err := raw.Publish(ctx, "vrpc.requests.demo", &rpcbus.Message{Value: body}); err != nil {
					t.Fatal(err)
				}
			}
			// Every copy is answered: the first by the target, the rest from
			// the store (or dropped while the first was still in progress).
			var answered int
			var dups uint64
			for dups+1 < copies || answered == 0 {
				select {
				case resp := <-replies:
					if resp.Id != "dup-1" || resp.GetStatus().GetCode() != 0 {
						t.Fatalf("reply %v", resp)
					}
					var out demo.Response
					if err := proto.Unmarshal(resp.Payload, &out); err != nil || out.Message != "once" {
						t.Fatalf("reply payload %q, %v", out.Message, err)
					}
					answered++
				case <-time.After(50 * time.Millisecond):
				case <-ctx.Done():
					t.Fatalf("answered %d, duplicates counted %d", answered, dups)
				}
				dups = 0
				for _, s := range srvs {
					dups += s.Stats().Duplicates
				}
			}
			if n := cd.calls.Load(); n != 1 {
				t.Fatalf("target executed the request %d times, want 1", n)
			}
		})
	}
}
