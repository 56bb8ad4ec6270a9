package inproc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/paho"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp091 "github.com/rabbitmq/amqp091-go"
	goredis "github.com/redis/go-redis/v9"

	"github.com/nextpkg/vrpc/rpcbus"
	_ "github.com/nextpkg/vrpc/rpcbus/amqp"  // rpc_bus.type amqp
	_ "github.com/nextpkg/vrpc/rpcbus/mqtt"  // rpc_bus.type mqtt
	_ "github.com/nextpkg/vrpc/rpcbus/nats"  // rpc_bus.type nats
	_ "github.com/nextpkg/vrpc/rpcbus/redis" // rpc_bus.type redis
)

// A server the deployment uses but does not start: where it listens by
// default, and how to start it on this kind of machine.
type broker struct {
	name        string // for people: "NATS server with JetStream"
	defaultAddr string
	defaultPort string // when an address has none
	start       string
}

var servers = map[string]broker{
	BusKafka: {"Kafka broker", DefaultKafkaBroker, "9092",
		"`vrpc serve` with rpc_bus.type embedded hosts one (see example/embedded.yaml), or use --bus embedded"},
	BusNATS: {"NATS server with JetStream", DefaultNATSServer, "4222",
		"`nats-server -js -a 127.0.0.1 -p 4222 -sd /var/lib/nats-server` (JetStream must be on)"},
	BusAMQP: {"RabbitMQ broker", DefaultAMQPBroker, "5672",
		"`rabbitmq-server -detached` (user guest/guest on the default virtual host)"},
	BusRedis: {"Redis server", DefaultRedisServer, "6379",
		"`redis-server --daemonize yes --bind 127.0.0.1 --port 6379` (Redis 6.2 or later)"},
	BusMQTT: {"MQTT 5 broker", DefaultMQTTBroker, "1883",
		"`mosquitto -d -c /etc/mosquitto/mosquitto.conf` (Mosquitto 2, listening on 127.0.0.1:1883)"},
}

// reachable dials the first of addrs and, if nothing answers, returns an
// error saying which server is missing and how to start it.
func (b broker) reachable(ctx context.Context, addrs []string) error {
	addr := hostPort(addrs[0], b.defaultPort)
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("no %s answers at %s (%v): start one with %s, or give its address with --brokers",
			b.name, addr, err, b.start)
	}
	return c.Close()
}

// hostPort strips a URL scheme (nats://, tcp://) and adds port if addr
// has none.
func hostPort(addr, port string) string {
	if _, rest, ok := strings.Cut(addr, "://"); ok {
		addr = rest
	}
	if i := strings.LastIndex(addr, "@"); i >= 0 { // user:password@host
		addr = addr[i+1:]
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return net.JoinHostPort(addr, port)
	}
	return addr
}

// external configures the deployment on a bus that keeps state of its own
// between runs (streams, queues, keys, sessions). Every name it creates
// starts with d.ServerName, unique to the run, and Close removes them.
func (d *Deployment) external(ctx context.Context, bus string, addrs []string) error {
	b := servers[bus]
	if len(addrs) == 0 {
		addrs = []string{b.defaultAddr}
	}
	if err := b.reachable(ctx, addrs); err != nil {
		return err
	}
	ns := d.ServerName
	d.RequestTopic, d.ResponseTopic = ns+".requests", ns+".responses"
	switch bus {
	case BusNATS:
		d.Bus = rpcbus.Config{Type: "nats", Brokers: addrs}
		d.BusInfo = fmt.Sprintf("NATS JetStream at %s", strings.Join(addrs, ","))
		d.cleanup = func(ctx context.Context) error { return deleteNATSStreams(ctx, addrs, ns+".>") }
	case BusAMQP:
		d.Bus = rpcbus.Config{Type: "amqp", Brokers: addrs, Settings: map[string]any{
			"exchange": ns,
			// Should the process die before Close, its queues go
			// once nothing has consumed them for this long.
			"queue_expires": "10m",
		}}
		d.BusInfo = fmt.Sprintf("RabbitMQ at %s", strings.Join(addrs, ","))
		d.cleanup = func(ctx context.Context) error {
			return deleteAMQPQueues(ctx, hostPort(addrs[0], b.defaultPort), ns, d.durableQueues())
		}
	case BusRedis:
		prefix := ns + ":"
		d.Bus = rpcbus.Config{Type: "redis", Brokers: addrs, Settings: map[string]any{"key_prefix": prefix}}
		d.BusInfo = fmt.Sprintf("Redis Streams at %s", addrs[0])
		d.cleanup = func(ctx context.Context) error { return deleteRedisKeys(ctx, addrs[0], prefix) }
	case BusMQTT:
		d.Bus = rpcbus.Config{Type: "mqtt", Brokers: addrs, Settings: map[string]any{
			"client_id_prefix": ns + "-",
			// Sessions left behind by a process that dies before Close
			// expire soon.
			"session_expiry": "30s",
			"will_delay":     "1s",
		}}
		d.BusInfo = fmt.Sprintf("MQTT (QoS 1) at %s", strings.Join(addrs, ","))
		d.cleanup = func(ctx context.Context) error {
			return endMQTTSessions(ctx, hostPort(addrs[0], b.defaultPort), d.groups())
		}
	}
	d.BusInfo += fmt.Sprintf(", names under %s (removed at the end)", ns)
	return nil
}

// Consumes records that group consumes topic on the deployment's bus
// besides the server (a benchmark's own responder), so that Close removes
// what the bus keeps for it. Call it before the group subscribes.
func (d *Deployment) Consumes(topic, group string) {
	d.mu.Lock()
	d.consumers = append(d.consumers, [2]string{topic, group})
	d.mu.Unlock()
}

// durableQueues are the AMQP queues of the deployment's groups, named
// "<topic>:<group>" as package amqp documents.
func (d *Deployment) durableQueues() []string {
	qs := []string{d.RequestTopic + "." + d.Target + ":" + d.ServerName}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.consumers {
		qs = append(qs, c[0]+":"+c[1])
	}
	return qs
}

// groups are the consumer groups of the deployment: the server's and those
// recorded with Consumes.
func (d *Deployment) groups() []string {
	gs := []string{d.ServerName}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.consumers {
		gs = append(gs, c[1])
	}
	return gs
}

// deleteNATSStreams deletes the JetStream streams carrying subjects that
// match filter.
func deleteNATSStreams(ctx context.Context, servers []string, filter string) error {
	nc, err := natsgo.Connect(strings.Join(servers, ","), natsgo.Name("vrpc-inproc-cleanup"))
	if err != nil {
		return fmt.Errorf("remove the run's NATS streams: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("remove the run's NATS streams: %w", err)
	}
	names := js.StreamNames(ctx, jetstream.WithStreamListSubject(filter))
	var streams []string
	for n := range names.Name() {
		streams = append(streams, n)
	}
	errs := []error{names.Err()}
	for _, n := range streams {
		if err := js.DeleteStream(ctx, n); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			errs = append(errs, fmt.Errorf("stream %s: %w", n, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove the run's NATS streams (under %s): %w", filter, err)
	}
	return nil
}

// deleteAMQPQueues deletes queues and exchange, as guest on the default
// virtual host (the deployment's own settings).
func deleteAMQPQueues(ctx context.Context, addr, exchange string, queues []string) error {
	conn, err := amqp091.DialConfig("amqp://guest:guest@"+addr+"/", amqp091.Config{
		Dial: func(network, addr string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	})
	if err != nil {
		return fmt.Errorf("remove the run's RabbitMQ queues: %w", err)
	}
	defer conn.Close()
	var errs []error
	var ch *amqp091.Channel
	channel := func() bool {
		if ch == nil || ch.IsClosed() { // an error closes the channel
			if ch, err = conn.Channel(); err != nil {
				errs = append(errs, err)
				return false
			}
		}
		return true
	}
	for _, q := range queues {
		if !channel() {
			break
		}
		if _, err := ch.QueueDelete(q, false, false, false); err != nil {
			errs = append(errs, fmt.Errorf("queue %s: %w", q, err))
		}
	}
	if channel() {
		if err := ch.ExchangeDelete(exchange, false, false); err != nil {
			errs = append(errs, fmt.Errorf("exchange %s: %w", exchange, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove the run's RabbitMQ queues: %w", err)
	}
	return nil
}

// deleteRedisKeys deletes every key starting with prefix.
func deleteRedisKeys(ctx context.Context, addr, prefix string) error {
	c := goredis.NewClient(&goredis.Options{Addr: addr, DisableIdentity: true})
	defer c.Close()
	var keys []string
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("remove the run's Redis keys (%s*): %w", prefix, err)
	}
	for len(keys) > 0 {
		n := min(len(keys), 500)
		if err := c.Unlink(ctx, keys[:n]...).Err(); err != nil {
			return fmt.Errorf("remove the run's Redis keys (%s*): %w", prefix, err)
		}
		keys = keys[n:]
	}
	return nil
}

// endMQTTSessions ends the sessions the groups' last members left on the
// broker for the next member to adopt, and clears their retained markers
// (package mqtt keeps them under vrpc~/orphans/<group>/<client id>).
func endMQTTSessions(ctx context.Context, addr string, groups []string) error {
	c, err := mqttConnect(ctx, addr, "vrpc-inproc-cleanup-"+randomHex(6), nil)
	if err != nil {
		return fmt.Errorf("remove the run's MQTT sessions: %w", err)
	}
	var mu sync.Mutex
	var markers []string
	got := make(chan struct{}, 1)
	c.AddOnPublishReceived(func(pr paho.PublishReceived) (bool, error) {
		if pr.Packet.Retain && len(pr.Packet.Payload) > 0 {
			mu.Lock()
			markers = append(markers, pr.Packet.Topic)
			mu.Unlock()
			select {
			case got <- struct{}{}:
			default:
			}
		}
		return true, nil
	})
	subs := make([]paho.SubscribeOptions, len(groups))
	for i, g := range groups {
		subs[i] = paho.SubscribeOptions{Topic: "vrpc~/orphans/" + g + "/+", QoS: 1}
	}
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: subs}); err != nil {
		_ = c.Disconnect(&paho.Disconnect{})
		return fmt.Errorf("remove the run's MQTT sessions: %w", err)
	}
	// The broker sends the retained markers right after the SUBACK; wait
	// until none has come for a moment.
	for quiet := time.NewTimer(300 * time.Millisecond); ; {
		select {
		case <-got:
			quiet.Reset(300 * time.Millisecond)
			continue
		case <-quiet.C:
		case <-ctx.Done():
		}
		break
	}
	mu.Lock()
	found := markers
	mu.Unlock()
	var errs []error
	for _, topic := range found {
		id := topic[strings.LastIndexByte(topic, '/')+1:]
		// Connecting with the departed member's client id and a clean
		// start discards its session.
		zero := uint32(0)
		if s, err := mqttConnect(ctx, addr, id, &zero); err != nil {
			errs = append(errs, fmt.Errorf("session %s: %w", id, err))
		} else {
			_ = s.Disconnect(&paho.Disconnect{})
		}
		if _, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Retain: true}); err != nil {
			errs = append(errs, fmt.Errorf("marker %s: %w", topic, err))
		}
	}
	_ = c.Disconnect(&paho.Disconnect{})
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove the run's MQTT sessions: %w", err)
	}
	return nil
}

// mqttConnect opens an MQTT 5 connection with a clean start; expiry, if
// set, is its session expiry interval.
func mqttConnect(ctx context.Context, addr, clientID string, expiry *uint32) (*paho.Client, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := paho.NewClient(paho.ClientConfig{ClientID: clientID, Conn: conn})
	cp := &paho.Connect{ClientID: clientID, CleanStart: true, KeepAlive: 30}
	if expiry != nil {
		cp.Properties = &paho.ConnectProperties{SessionExpiryInterval: expiry}
	}
	if _, err := c.Connect(ctx, cp); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return c, nil
}
