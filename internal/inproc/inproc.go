// Package inproc runs a whole vRPC deployment in one process: a bus, the
// demo gRPC target and a vRPC server forwarding to it. Clients are left to
// the caller, who opens them on Deployment.Bus as another process would.
//
// `vrpc demo`, `vrpc bench` and the repository's benchmarks start one; the
// bus is an in-process Kafka (franz-go's kfake) unless told otherwise, so
// they need nothing but Go. On the buses with servers of their own (NATS,
// RabbitMQ, Redis, MQTT) every name the deployment creates is unique to it,
// and Close removes what the bus would otherwise keep.
package inproc

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/example/demo/demoserver"
	"github.com/nextpkg/vrpc/rpcbus"
	_ "github.com/nextpkg/vrpc/rpcbus/all" // a deployment picks any bus by rpc_bus.type
	"github.com/nextpkg/vrpc/rpcbus/embedded"
	"github.com/nextpkg/vrpc/vclient"
	"github.com/nextpkg/vrpc/vserver"
)

// The buses Options.Bus names.
const (
	// BusEmbedded starts an in-process Kafka broker; clients and the server
	// reach it over TCP with rpc_bus.type kafka, as other processes would.
	BusEmbedded = "embedded"
	// BusKafka uses running Kafka brokers.
	BusKafka = "kafka"
	// BusMemory uses the in-memory bus: no network, no broker.
	BusMemory = "memory"
	// BusNATS uses a running NATS server with JetStream.
	BusNATS = "nats"
	// BusAMQP uses a running RabbitMQ broker, as guest on the default
	// virtual host.
	BusAMQP = "amqp"
	// BusRedis uses a running Redis server (Streams).
	BusRedis = "redis"
	// BusMQTT uses a running MQTT 5 broker.
	BusMQTT = "mqtt"
)

// Buses lists the values Options.Bus accepts.
var Buses = []string{BusEmbedded, BusKafka, BusMemory, BusNATS, BusAMQP, BusRedis, BusMQTT}

// Defaults of Options.
const (
	DefaultEmbeddedAddr = "127.0.0.1:0"
	DefaultKafkaBroker  = "127.0.0.1:9092"
	DefaultNATSServer   = "127.0.0.1:4222"
	DefaultAMQPBroker   = "127.0.0.1:5672"
	DefaultRedisServer  = "127.0.0.1:6379"
	DefaultMQTTBroker   = "127.0.0.1:1883"
	DefaultServerName   = "vrpc-inproc"
	DefaultTarget       = "demo"
	// TargetName is what the demo target reports in served_by.
	TargetName = "demo-target"
)

// Options says what to start.
type Options struct {
	// Bus is one of Buses; default BusEmbedded.
	Bus string
	// Brokers: for BusEmbedded, the address the broker listens on (default
	// 127.0.0.1 and a free port); for BusMemory, the in-memory broker's
	// name (default a fresh private name); for the others, the servers'
	// addresses (default the Default* address of the bus).
	Brokers []string
	// ServerName is the vRPC server's name and consumer group. On BusNATS,
	// BusAMQP, BusRedis and BusMQTT a random suffix makes it unique to the
	// deployment (Deployment.ServerName).
	ServerName string
	// Target is the target name the server forwards to the demo target.
	Target string
	// TargetTimeout is targets.<Target>.timeout; default 30s.
	TargetTimeout string
}

// Deployment is a running bus, demo target and vRPC server.
type Deployment struct {
	// Bus is the rpc_bus configuration clients use to reach the bus.
	Bus rpcbus.Config
	// BusInfo describes the bus for people.
	BusInfo string
	// Target is the target name the server serves; TargetAddr the demo
	// target's own gRPC address on loopback.
	Target     string
	TargetAddr string
	// Server is the vRPC server, ready.
	Server *vserver.Server
	// ServerName is the server's name and consumer group. RequestTopic and
	// ResponseTopic are topics.request and topics.response of the server
	// and its clients: vrpc.requests and vrpc.responses, except on the
	// buses that keep state between runs, where they start with
	// ServerName, unique to the deployment. ClientConfig fills them in.
	ServerName, RequestTopic, ResponseTopic string

	embedded  *embedded.Broker
	target    *grpc.Server
	serverErr chan error

	// cleanup removes what the deployment left on an external bus.
	cleanup   func(ctx context.Context) error
	mu        sync.Mutex
	consumers [][2]string // topic and group, recorded by Consumes
}

// cleanupTimeout bounds Close's removal of what the run left on the bus.
const cleanupTimeout = 30 * time.Second

// Start starts the bus (if it is in-process), the demo target and the vRPC
// server, and returns once the server consumes its request topic. On error
// it stops whatever it had started.
func Start(ctx context.Context, o Options) (d *Deployment, err error) {
	if o.Bus == "" {
		o.Bus = BusEmbedded
	}
	if o.ServerName == "" {
		o.ServerName = DefaultServerName
	}
	if o.Target == "" {
		o.Target = DefaultTarget
	}
	d = &Deployment{
		Target:        o.Target,
		ServerName:    o.ServerName,
		RequestTopic:  vclient.DefaultRequestTopic,
		ResponseTopic: vclient.DefaultResponseTopic,
	}
	defer func() {
		if err != nil {
			_ = d.Close()
			d = nil
		}
	}()

	switch o.Bus {
	case BusEmbedded:
		addr := DefaultEmbeddedAddr
		if len(o.Brokers) > 0 {
			addr = o.Brokers[0]
		}
		e, err := embedded.Start(addr)
		if err != nil {
			return d, fmt.Errorf("start the in-process Kafka on %s: %w", addr, err)
		}
		d.embedded = e
		d.Bus = rpcbus.Config{Type: "kafka", Brokers: []string{e.Addr()}}
		d.BusInfo = "in-process Kafka (kfake) on " + e.Addr()
	case BusKafka:
		brokers := o.Brokers
		if len(brokers) == 0 {
			brokers = []string{DefaultKafkaBroker}
		}
		if err := servers[BusKafka].reachable(ctx, brokers); err != nil {
			return d, err
		}
		d.Bus = rpcbus.Config{Type: "kafka", Brokers: brokers}
		d.BusInfo = fmt.Sprintf("Kafka at %v", brokers)
	case BusMemory:
		name := "vrpc-inproc-" + randomHex(4)
		if len(o.Brokers) > 0 {
			name = o.Brokers[0]
		}
		d.Bus = rpcbus.Config{Type: "memory", Brokers: []string{name}}
		d.BusInfo = fmt.Sprintf("in-memory bus %q", name)
	case BusNATS, BusAMQP, BusRedis, BusMQTT:
		d.ServerName = o.ServerName + "-" + randomHex(4)
		if err := d.external(ctx, o.Bus, o.Brokers); err != nil {
			return d, err
		}
	default:
		return d, fmt.Errorf("bus %q: want one of %v", o.Bus, Buses)
	}

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return d, fmt.Errorf("listen for the demo target: %w", err)
	}
	d.target = demoserver.Serve(lis, TargetName)
	d.TargetAddr = lis.Addr().String()

	cfg := &vrpc.Config{
		Name:   d.ServerName,
		Port:   -1, // no admin endpoint: nothing here asks it
		RpcBus: d.Bus,
		Targets: map[string]vrpc.Target{
			o.Target: {Endpoint: d.TargetAddr, Timeout: o.TargetTimeout},
		},
		DrainTimeout: 10 * time.Second,
	}
	cfg.Topics.Request, cfg.Topics.Response = d.RequestTopic, d.ResponseTopic
	srv, err := vserver.NewServer(cfg)
	if err != nil {
		return d, err
	}
	d.serverErr = make(chan error, 1)
	go func() { d.serverErr <- srv.Start() }()
	select {
	case <-srv.Ready():
		d.Server = srv
		return d, nil
	case err := <-d.serverErr:
		d.serverErr = nil
		return d, fmt.Errorf("start the vRPC server on %s: %w", d.BusInfo, err)
	case <-ctx.Done():
		srv.Stop()
		<-d.serverErr
		d.serverErr = nil
		return d, ctx.Err()
	}
}

// ClientConfig is the configuration of a vRPC client of the deployment:
// its bus and topics.
func (d *Deployment) ClientConfig(clientID string) vclient.Config {
	c := vclient.Config{ClientID: clientID, RpcBus: d.Bus}
	c.Topics.Request, c.Topics.Response = d.RequestTopic, d.ResponseTopic
	return c
}

// Close stops the vRPC server (letting calls in flight finish), the demo
// target and the in-process broker, in that order, then removes what the
// deployment created on an external bus (streams, queues, keys, sessions).
// Close clients first.
func (d *Deployment) Close() error {
	var errs []error
	if d.Server != nil {
		d.Server.Stop()
		errs = append(errs, <-d.serverErr)
		d.Server = nil
	}
	if d.target != nil {
		d.target.GracefulStop()
		d.target = nil
	}
	if d.embedded != nil {
		d.embedded.Close()
		d.embedded = nil
	}
	if d.cleanup != nil {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		errs = append(errs, d.cleanup(ctx))
		cancel()
		d.cleanup = nil
	}
	return errors.Join(errs...)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = crand.Read(b)
	return hex.EncodeToString(b)
}
