package inproc

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

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
		d.BusInfo = fmt.Sprintf("NATS JetStream at %s", strings.Join(rpcbus.RedactAddresses(addrs), ","))
	case BusAMQP:
		d.Bus = rpcbus.Config{Type: "amqp", Brokers: addrs, Settings: map[string]any{
			"exchange": ns,
			// Should the process die before Close, its queues go
			// once nothing has consumed them for this long.
			"queue_expires": "10m",
		}}
		d.BusInfo = fmt.Sprintf("RabbitMQ at %s", strings.Join(addrs, ","))
	case BusRedis:
		prefix := ns + ":"
		d.Bus = rpcbus.Config{Type: "redis", Brokers: addrs, Settings: map[string]any{"key_prefix": prefix}}
		d.BusInfo = fmt.Sprintf("Redis Streams at %s", rpcbus.RedactAddress(addrs[0]))
	case BusMQTT:
		d.Bus = rpcbus.Config{Type: "mqtt", Brokers: addrs, Settings: map[string]any{
			"client_id_prefix": ns + "-",
			// Sessions left behind by a process that dies before Close
			// expire soon.
			"session_expiry": "30s",
			"will_delay":     "1s",
		}}
		d.BusInfo = fmt.Sprintf("MQTT (QoS 1) at %s", strings.Join(addrs, ","))
	}
	// The bus removes what it made for the deployment: every name starts
	// with ns (the AMQP exchange is ns itself).
	d.cleanup = func(ctx context.Context) error {
		return removeLeftovers(ctx, d.Bus, rpcbus.Leftovers{Topics: d.topics(), Groups: d.groups(), Prefix: ns})
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

// topics are the topics the deployment's groups consume: the server's
// request topic and those recorded with Consumes.
func (d *Deployment) topics() []string {
	ts := []string{d.RequestTopic + "." + d.Target}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.consumers {
		ts = append(ts, c[0])
	}
	return ts
}

// removeLeftovers opens a bus on cfg, has it remove l from its servers
// (rpcbus.Remover) and closes it.
func removeLeftovers(ctx context.Context, cfg rpcbus.Config, l rpcbus.Leftovers) error {
	b, err := rpcbus.New(cfg)
	if err != nil {
		return fmt.Errorf("remove what the run left on the bus: %w", err)
	}
	defer b.Close()
	r, ok := b.(rpcbus.Remover)
	if !ok {
		return fmt.Errorf("remove what the run left on the bus: rpc_bus.type %s cannot (it is no rpcbus.Remover)", cfg.Type)
	}
	if err := r.Remove(ctx, l); err != nil {
		return fmt.Errorf("remove what the run left on the bus: %w", err)
	}
	return nil
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
