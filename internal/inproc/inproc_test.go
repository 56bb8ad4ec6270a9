package inproc_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp091 "github.com/rabbitmq/amqp091-go"
	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/internal/inproc"
	"github.com/nextpkg/vrpc/vclient"
)

func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.DiscardHandler))
	// go-zero starts goroutines from init for the life of the process.
	goleak.VerifyTestMain(m, goleak.IgnoreCurrent())
}

// need skips t when addr does not answer, or fails it under CI.
func need(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err == nil {
		c.Close()
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s: %v", addr, err)
	}
	t.Skipf("nothing answers at %s (%v)", addr, err)
}

// TestExternalBuses calls the demo target through each bus with a server
// of its own, then checks that Close removed what the deployment created
// there.
func TestExternalBuses(t *testing.T) {
	for _, tc := range []struct {
		bus, addr string
		// left lists what the deployment named ns left on the server.
		left func(t *testing.T, ctx context.Context, ns string) []string
	}{
		{inproc.BusNATS, inproc.DefaultNATSServer, natsStreams},
		{inproc.BusAMQP, inproc.DefaultAMQPBroker, amqpQueues},
		{inproc.BusRedis, inproc.DefaultRedisServer, redisKeys},
		{inproc.BusMQTT, inproc.DefaultMQTTBroker, mqttMarkers},
	} {
		t.Run(tc.bus, func(t *testing.T) {
			t.Parallel()
			need(t, tc.addr)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			d, err := inproc.Start(ctx, inproc.Options{Bus: tc.bus, ServerName: "inproc-test"})
			if err != nil {
				t.Fatal(err)
			}
			ns := d.ServerName
			if !strings.HasPrefix(ns, "inproc-test-") || !strings.HasPrefix(d.RequestTopic, ns+".") {
				t.Errorf("server %q, topics %q: want names unique to the run", ns, d.RequestTopic)
			}
			// A second group, as benchkit's raw round trip has.
			d.Consumes(d.RequestTopic+".extra", ns+"-extra")

			c, err := vclient.New(d.ClientConfig("inproc-test"))
			if err != nil {
				_ = d.Close()
				t.Fatal(err)
			}
			resp, err := demo.NewDemoClient(vclient.NewConn(c, d.Target)).Ping(ctx, &demo.Request{Message: "hi"})
			if err != nil || resp.GetServedBy() != inproc.TargetName {
				t.Errorf("Ping through %s: %v, %v", tc.bus, resp, err)
			}
			if err := c.Close(); err != nil {
				t.Errorf("client Close: %v", err)
			}
			if err := d.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if left := tc.left(t, ctx, ns); len(left) > 0 {
				t.Errorf("Close left %v", left)
			}
		})
	}
}

func natsStreams(t *testing.T, ctx context.Context, ns string) []string {
	nc, err := natsgo.Connect(inproc.DefaultNATSServer)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	names := js.StreamNames(ctx, jetstream.WithStreamListSubject(ns+".>"))
	for n := range names.Name() {
		left = append(left, n)
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
	return left
}

func amqpQueues(t *testing.T, _ context.Context, ns string) []string {
	conn, err := amqp091.Dial("amqp://guest:guest@" + inproc.DefaultAMQPBroker + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var left []string
	for _, q := range []string{ns + ".requests." + inproc.DefaultTarget + ":" + ns, ns + ".requests.extra:" + ns + "-extra"} {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		// A passive declare fails, closing the channel, if the queue is
		// gone.
		if _, err := ch.QueueDeclarePassive(q, true, false, false, false, nil); err == nil {
			left = append(left, q)
			_ = ch.Close()
		}
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclarePassive(ns, "direct", true, false, false, false, nil); err == nil {
		left = append(left, "exchange "+ns)
		_ = ch.Close()
	}
	return left
}

func redisKeys(t *testing.T, ctx context.Context, ns string) []string {
	c := goredis.NewClient(&goredis.Options{Addr: inproc.DefaultRedisServer})
	defer c.Close()
	keys, err := c.Keys(ctx, ns+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// mqttMarkers lists the retained session markers of the deployment's
// groups.
func mqttMarkers(t *testing.T, ctx context.Context, ns string) []string {
	conn, err := net.Dial("tcp", inproc.DefaultMQTTBroker)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var left []string
	id := "inproc-test-check-" + ns
	c := paho.NewClient(paho.ClientConfig{ClientID: id, Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			if len(pr.Packet.Payload) > 0 {
				mu.Lock()
				left = append(left, pr.Packet.Topic)
				mu.Unlock()
			}
			return true, nil
		}}})
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30}); err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(&paho.Disconnect{})
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "vrpc~/orphans/" + ns + "/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	// Retained messages follow the SUBACK at once; give them a moment.
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	return append([]string(nil), left...)
}

// TestUnreachable checks that a bus whose server is not running fails
// Start with a message saying how to start one.
func TestUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	for _, tc := range []struct{ bus, want string }{
		{inproc.BusKafka, "vrpc serve"},
		{inproc.BusNATS, "nats-server -js"},
		{inproc.BusAMQP, "rabbitmq-server"},
		{inproc.BusRedis, "redis-server"},
		{inproc.BusMQTT, "mosquitto"},
	} {
		t.Run(tc.bus, func(t *testing.T) {
			d, err := inproc.Start(context.Background(), inproc.Options{Bus: tc.bus, Brokers: []string{addr}})
			if err == nil {
				_ = d.Close()
				t.Fatal("Start succeeded with no server")
			}
			if !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q: want the address and how to start a server (%q)", err, tc.want)
			}
		})
	}
}

func TestUnknownBus(t *testing.T) {
	_, err := inproc.Start(context.Background(), inproc.Options{Bus: "kafak"})
	if err == nil || !strings.Contains(err.Error(), "kafak") || !strings.Contains(err.Error(), inproc.BusNATS) {
		t.Errorf("error %v: want the bad name and the buses there are", err)
	}
}
