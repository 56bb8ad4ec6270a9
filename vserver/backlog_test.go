package vserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vclient"
	"github.com/nextpkg/vrpc/vserver"
)

// TestBacklog: calls made while the server is stopped wait on the bus; a
// server of the same group counts them (Backlog, /debug/vrpc) before it
// starts, and once it has served them the backlog on /metrics and
// /debug/vrpc is zero and the client has nothing waiting.
func TestBacklog(t *testing.T) {
	t.Parallel()
	busCfg := startKafka(t)
	cfg := serverConfig(busCfg, startDemo(t, "demo-1"))
	cfg.Host, cfg.Port = "127.0.0.1", 0
	c := newClient(t, busCfg, "backlog")
	const topic = "vrpc.requests.demo"

	// A server serves a call and stops: its group has a position.
	first := startServer(t, cfg)
	if _, err := c.Call(testContext(t), "demo", "/demo.Demo/Ping", mustMarshal(t, &demo.Request{Message: "first"}), nil); err != nil {
		t.Fatal(err)
	}
	first.Stop()

	const n = 5
	var calls sync.WaitGroup
	ctx := testContext(t)
	for i := range n {
		calls.Go(func() {
			if _, err := c.Call(ctx, "demo", "/demo.Demo/Ping", mustMarshal(t, &demo.Request{Message: fmt.Sprint("queued ", i)}), nil); err != nil {
				t.Errorf("call %d: %v", i, err)
			}
		})
	}
	eventually(t, "the calls wait for their replies", func() bool {
		w := c.Waiting()
		return w.AwaitingReply == n && w.Publishing == 0 && w.OldestAwaitingReply > 0
	})

	second, err := vserver.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var got []rpcbus.TopicBacklog
	eventually(t, fmt.Sprintf("a backlog of %d before the server starts", n), func() bool {
		got, _, err = second.Backlog(ctx)
		return err == nil && len(got) == 1 && got[0].Topic == topic && got[0].Group == cfg.Name && got[0].Messages == n
	})
	if info := second.Debug(ctx); len(info.Backlog) != 1 || info.Backlog[0].Messages != n || info.BacklogAt.IsZero() || info.BacklogErr != "" {
		t.Errorf("Debug() backlog = %+v at %v (error %q), want %d messages on %s", info.Backlog, info.BacklogAt, info.BacklogErr, n, topic)
	}

	errc := make(chan error, 1)
	go func() { errc <- second.Start() }()
	t.Cleanup(func() {
		second.Stop()
		if err := <-errc; err != nil {
			t.Errorf("Start returned %v after Stop", err)
		}
	})
	<-second.Ready()
	calls.Wait()
	if w := c.Waiting(); w != (vclient.WaitingCalls{}) {
		t.Errorf("Waiting() once every call returned = %+v, want nothing", w)
	}
	eventually(t, "no backlog on /metrics once the calls are served", func() bool {
		m := scrape(t, second.AdminAddr()).find("vrpc_server_request_backlog", map[string]string{"topic": topic})
		return m != nil && m.GetGauge().GetValue() == 0
	})
	resp, err := http.Get("http://" + second.AdminAddr() + "/debug/vrpc")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var info struct {
		Backlog []struct {
			Topic    string `json:"topic"`
			Group    string `json:"group"`
			Messages *int64 `json:"messages"`
		} `json:"backlog"`
		BacklogAt string `json:"backlog_at"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		t.Fatal(err)
	}
	if len(info.Backlog) != 1 || info.Backlog[0].Topic != topic || info.Backlog[0].Group != cfg.Name ||
		info.Backlog[0].Messages == nil || *info.Backlog[0].Messages != 0 || info.BacklogAt == "" {
		t.Errorf("/debug/vrpc backlog = %+v at %q, want 0 messages of group %s on %s", info.Backlog, info.BacklogAt, cfg.Name, topic)
	}
}

// countingBus is a memory bus that counts the backlog questions it is
// asked.
type countingBus struct {
	rpcbus.Bus
	asked atomic.Int64
}

func (b *countingBus) Backlog(ctx context.Context, group string, topics []string) ([]rpcbus.TopicBacklog, error) {
	b.asked.Add(1)
	return b.Bus.(rpcbus.BacklogReporter).Backlog(ctx, group, topics)
}

// TestBacklogBoundedRate: however many scrapes and debug reads come at
// once, the server asks the bus once, and reuses the answer for a few
// seconds.
func TestBacklogBoundedRate(t *testing.T) {
	t.Parallel()
	busCfg := rpcbus.Config{Type: "memory", Brokers: []string{t.Name()}}
	bus := &countingBus{Bus: openBus(t, busCfg)}
	srv, err := vserver.NewServer(serverConfig(busCfg, startDemo(t, "demo-1")), vserver.WithBus(bus))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	start := time.Now()
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if _, err := srv.Registry().Gather(); err != nil {
				t.Errorf("Gather: %v", err)
			}
		})
		wg.Go(func() { srv.Debug(testContext(t)) })
		wg.Go(func() {
			if _, _, err := srv.Backlog(testContext(t)); err != nil {
				t.Errorf("Backlog: %v", err)
			}
		})
	}
	wg.Wait()
	// Once per five seconds (more only on a machine so loaded that these
	// took longer than that).
	if n, bound := bus.asked.Load(), 1+int64(time.Since(start)/(5*time.Second)); n < 1 || n > bound {
		t.Errorf("the bus was asked %d times for 48 reads in %v, want 1 to %d", n, time.Since(start), bound)
	}
}
