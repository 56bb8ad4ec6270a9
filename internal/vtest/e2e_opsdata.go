package vtest

import (
	"fmt"
	"sync"
	"testing"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/vclient"
	"github.com/nextpkg/vrpc/vserver"
)

// testOperationsData: calls made while their server is stopped show at
// the client as waiting (Waiting), and on the bus as the backlog of their
// request topic, which a spare server of the group counts before it runs
// (exactly, on every bus that can count; MQTT says it cannot, and why).
// Once a server has served them, nothing waits and the backlog is zero.
func testOperationsData(t *testing.T, e *e2e) {
	cfg := e.serverConfig("ops", map[string]vrpc.Target{"ops": {Endpoint: StartDemo(t, "ops")}})
	c := e.newClient(t, "e2e-ops")
	conn := vclient.NewConn(c, "ops")
	first := StartServer(t, cfg)
	if _, err := ping(testContext(t), conn, "first"); err != nil {
		t.Fatal(err)
	}
	first.Stop() // the group keeps its position on the bus

	const n = 4
	var calls sync.WaitGroup
	ctx := testContext(t)
	for i := range n {
		calls.Go(func() {
			if _, err := ping(ctx, conn, fmt.Sprint("queued-", i)); err != nil {
				t.Errorf("call %d: %v", i, err)
			}
		})
	}
	eventually(t, "the calls waiting", func() bool {
		w := c.Waiting()
		// A bus that refuses a publish nobody consumes (MQTT) keeps them
		// publishing; the others take them and they await their replies.
		return w.Publishing+w.AwaitingReply == n && (w.OldestAwaitingReply > 0 || w.OldestPublishing > 0)
	})
	known := e.backlog(t, cfg, n)

	s := StartServer(t, cfg)
	calls.Wait()
	if w := c.Waiting(); w != (vclient.WaitingCalls{}) {
		t.Errorf("Waiting() once every call returned = %+v, want nothing", w)
	}
	if known {
		e.backlog(t, cfg, 0)
	}
	s.Stop()
}

// backlog checks that a spare server of cfg's group, never started,
// counts want requests on its topic, and reports whether the bus can
// count at all. A bus that cannot must say why.
func (e *e2e) backlog(t *testing.T, cfg *vrpc.Config, want int64) bool {
	t.Helper()
	spare, err := vserver.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer spare.Stop()
	var last string
	defer func() {
		if t.Failed() {
			t.Logf("the last backlog read: %s", last)
		}
	}()
	known := true
	eventually(t, fmt.Sprintf("a backlog of %d", want), func() bool {
		got, _, err := spare.Backlog(testContext(t))
		switch {
		case err != nil:
			last = err.Error()
		case len(got) != 1 || got[0].Group != cfg.Name:
			last = fmt.Sprintf("%+v", got)
		case got[0].Messages == -1 && got[0].Unknown != "" && cfg.RpcBus.Type == "mqtt":
			known, last = false, got[0].Unknown
			return true
		default:
			last = fmt.Sprintf("%+v", got[0])
			return got[0].Messages == want
		}
		return false
	})
	if !known {
		t.Logf("%s cannot count a backlog: %s", cfg.RpcBus.Type, last)
	}
	return known
}
