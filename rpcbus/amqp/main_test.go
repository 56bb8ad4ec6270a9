package amqp_test

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/amqp"
	"github.com/nextpkg/vrpc/rpcbus/bustest"
)

// brokerAddr is the machine's RabbitMQ; every test works on an exchange
// and queues of its own, and deletes them.
const brokerAddr = "127.0.0.1:5672"

func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.DiscardHandler)) // reconnection logs of the tests that cut connections
	goleak.VerifyTestMain(m,
		// Process-lifetime goroutines go-zero starts in package init.
		goleak.IgnoreCurrent(),
	)
}

var (
	reachOnce sync.Once
	reachErr  error
)

// needBroker skips t when RabbitMQ is not reachable, saying how to start
// it; under CI (CI=true) it fails t instead.
func needBroker(t testing.TB) {
	t.Helper()
	reachOnce.Do(func() {
		c, err := net.DialTimeout("tcp", brokerAddr, 2*time.Second)
		if err != nil {
			reachErr = err
			return
		}
		c.Close()
	})
	if reachErr == nil {
		return
	}
	msg := fmt.Sprintf("RabbitMQ is not reachable at %s (%v): start it with `rabbitmq-server -detached`", brokerAddr, reachErr)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// unique returns a name no other test, run or process uses.
func unique(what string) string {
	return "vrpc-test." + what + "." + strings.ToLower(rand.Text()[:12])
}

// scope is the exchange of one test and the queues its buses declared,
// deleted when the test ends.
type scope struct {
	exchange string
	mu       sync.Mutex
	queues   map[string]bool
}

// newScope returns a scope with an exchange of its own, cleaned up when t
// ends (after the buses of t are closed: cleanups run last first).
func newScope(t testing.TB) *scope {
	t.Helper()
	needBroker(t)
	s := &scope{exchange: unique("exchange"), queues: map[string]bool{}}
	t.Cleanup(func() { s.cleanup(t) })
	return s
}

// addQueue records a queue declared by a bus the test did not make with
// newBus (a vRPC server's), to delete it.
func (s *scope) addQueue(q string) {
	s.mu.Lock()
	s.queues[q] = true
	s.mu.Unlock()
}

// settings are the test settings of the scope's buses, with more.
func (s *scope) settings(more map[string]any) map[string]any {
	set := map[string]any{
		"exchange": s.exchange,
		// A safety net if a run dies before its cleanup.
		"queue_expires": "10m",
	}
	for k, v := range more {
		set[k] = v
	}
	return set
}

// newBus returns a bus of the scope. It is not closed by newBus: the
// caller (or bustest) does that.
func (s *scope) newBus(t testing.TB, more map[string]any, brokers ...string) *amqp.Bus {
	t.Helper()
	if len(brokers) == 0 {
		brokers = []string{brokerAddr}
	}
	b, err := amqp.New(rpcbus.Config{Type: "amqp", Brokers: brokers, Settings: s.settings(more)})
	if err != nil {
		t.Fatal(err)
	}
	amqp.SetOnDeclare(b, func(q string) {
		s.mu.Lock()
		s.queues[q] = true
		s.mu.Unlock()
	})
	return b
}

// bus is newBus, closed when t ends.
func (s *scope) bus(t testing.TB, more map[string]any, brokers ...string) *amqp.Bus {
	t.Helper()
	b := s.newBus(t, more, brokers...)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// cleanup deletes the scope's queues and exchange.
func (s *scope) cleanup(t testing.TB) {
	conn, err := amqp091.Dial("amqp://guest:guest@" + brokerAddr + "/")
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	defer conn.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	var ch *amqp091.Channel
	for q := range s.queues {
		if ch == nil || ch.IsClosed() {
			if ch, err = conn.Channel(); err != nil {
				t.Errorf("cleanup: %v", err)
				return
			}
		}
		if _, err := ch.QueueDelete(q, false, false, false); err != nil {
			t.Logf("cleanup: deleting queue %s: %v", q, err)
		}
	}
	if ch == nil || ch.IsClosed() {
		if ch, err = conn.Channel(); err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
	}
	if err := ch.ExchangeDelete(s.exchange, false, false); err != nil {
		t.Logf("cleanup: deleting exchange %s: %v", s.exchange, err)
	}
}

// ctxFor and eventually are the helpers every backend's tests share.
var (
	ctxFor     = bustest.Context
	eventually = bustest.Eventually
)
