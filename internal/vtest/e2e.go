package vtest

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vclient"
)

// waitLimit bounds every wait of the end-to-end suite. It only turns a hang
// into a failure, so it is generous: a loaded two-core machine running
// -race must never reach it.
const waitLimit = time.Minute

// E2EOptions is what differs between the buses RunEndToEnd runs over.
type E2EOptions struct {
	// Prefix starts the name of everything the suite's server and clients
	// use on the bus: request topics "<Prefix>.requests.<target>", reply
	// addresses under "<Prefix>.responses", the server's group
	// "<Prefix>-server". Runs on a shared broker need a prefix of their
	// own, so that they never see each other's messages and the backend's
	// test can delete what the run left. Required.
	Prefix string
	// OnServer, when set, is called with the configuration of each server
	// the suite starts, before it starts, for a backend's test to note what
	// the server will declare on the broker (AMQP queues, say) and delete
	// it later. Every server's name starts with Prefix.
	OnServer func(cfg *vrpc.Config)
	// OnSubscribe, when set, is called with the topics and group of every
	// subscription the suite makes other than a server's (RunAttacks'
	// eavesdropper), for the same reason as OnServer.
	OnSubscribe func(topics []string, group string)
	// Security runs the suite with signed calls: the server knows every
	// client of the suite by a key, and every request and reply is signed
	// (and, with Ed25519Sealed, sealed). Zero runs it unsigned.
	Security Security
}

// Security is a way the end-to-end suite secures its calls.
type Security int

// The ways to secure the suite's calls.
const (
	Unsigned Security = iota
	// HMAC signs with a secret per client.
	HMAC
	// Ed25519Sealed signs requests with each client's Ed25519 key and
	// replies with the server's, and seals every body with a secret per
	// client.
	Ed25519Sealed
)

// RunEndToEnd runs the end-to-end suite every bus passes: real gRPC targets
// on loopback (the demo target and a probe of errors, metadata and
// deadlines) behind a vRPC server, called by vRPC clients in every way an
// application can, each client and the server with a bus connection of its
// own as separate processes would have. bus is how they reach the broker.
//
// The subtests share the server (those about servers start more of their
// own) and run one after another, so that the floods of calls some of them
// make never blur what another measures. They stop the servers, targets
// and clients when t ends; what a run leaves on
// the broker is for the caller to delete (see E2EOptions).
func RunEndToEnd(t *testing.T, bus rpcbus.Config, o E2EOptions) {
	t.Helper()
	if !rpcbus.ValidName(o.Prefix) {
		t.Fatalf("vtest: E2EOptions.Prefix %q: want letters, digits, '.', '_' and '-', unique to the run", o.Prefix)
	}
	e := &e2e{bus: bus, o: o}
	e.keys = newSuiteKeys(t, o.Security)
	demoAddr := StartDemo(t, demoName)
	var probeAddr string
	e.probe, probeAddr = startProbe(t, probeName)

	StartServer(t, e.serverConfig("server", map[string]vrpc.Target{
		"demo": {Endpoint: demoAddr},
		// Longer than any caller's deadline, which is the one that counts.
		"probe": {Endpoint: probeAddr, Timeout: "1h"},
		// Shorter than the caller's: it caps the call.
		"capped": {Endpoint: probeAddr, Timeout: "2s"},
		// Nothing listens there.
		"down": {Endpoint: unreachable},
	}))
	t.Cleanup(e.probe.unblock) // before the server stops: it drains at once
	e.client = e.newClient(t, "e2e-client")

	for _, tc := range e2eCases {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, e) })
	}
}

// e2e is the world of one RunEndToEnd: its bus, targets, server and first
// client.
type e2e struct {
	bus    rpcbus.Config
	o      E2EOptions
	probe  *probe
	client *vclient.Client
	keys   *suiteKeys // nil: unsigned
}

// topics are the request and response topics of the run.
func (e *e2e) topics() (request, response string) {
	return e.o.Prefix + ".requests", e.o.Prefix + ".responses"
}

// serverConfig is the configuration of a server of the run, named
// "<Prefix>-<name>" (servers of one name share their targets' requests),
// forwarding to targets. OnServer has seen it.
func (e *e2e) serverConfig(name string, targets map[string]vrpc.Target) *vrpc.Config {
	cfg := &vrpc.Config{Name: e.o.Prefix + "-" + name, Port: -1, RpcBus: e.bus, Targets: targets}
	cfg.Topics.Request, cfg.Topics.Response = e.topics()
	e.keys.secureServer(cfg)
	if e.o.OnServer != nil {
		e.o.OnServer(cfg)
	}
	return cfg
}

// clientConfig is the configuration of a client of the run.
func (e *e2e) clientConfig(clientID string) vclient.Config {
	cfg := vclient.Config{ClientID: clientID, RpcBus: e.bus}
	cfg.Topics.Request, cfg.Topics.Response = e.topics()
	e.keys.secureClient(&cfg)
	return cfg
}

// newClient opens another client of the run, on a bus connection of its
// own, closed when t ends.
func (e *e2e) newClient(t testing.TB, clientID string) *vclient.Client {
	t.Helper()
	return StartClient(t, e.clientConfig(clientID))
}

// caller is one way an application calls a target through vRPC: conn
// returns a connection of c whose calls go to target.
type caller struct {
	name string
	conn func(t *testing.T, c *vclient.Client, target string) grpc.ClientConnInterface
}

// unreachable is an address where nothing listens: a conn to it that
// works shows the call went over the bus.
const unreachable = "127.0.0.1:1"

// callers are every way an application calls a target through vRPC.
var callers = []caller{
	{"Conn", func(_ *testing.T, c *vclient.Client, target string) grpc.ClientConnInterface {
		return vclient.NewConn(c, target)
	}},
	// A vrpc:/// conn given no resolver of the client: the call is the
	// interceptor's, or fails.
	{"Interceptor", func(t *testing.T, c *vclient.Client, target string) grpc.ClientConnInterface {
		return dial(t, vclient.Scheme+":///"+target, grpc.WithUnaryInterceptor(c.UnaryClientInterceptor()))
	}},
	// The conn's address is unreachable: the call never goes to it.
	{"InterceptorWithTarget", func(t *testing.T, c *vclient.Client, target string) grpc.ClientConnInterface {
		return dial(t, "passthrough:///"+unreachable, grpc.WithUnaryInterceptor(c.UnaryClientInterceptor(vclient.WithTarget(target))))
	}},
	// No interceptor: the call goes over gRPC to the client's loopback
	// endpoint, and from there over the bus.
	{"Resolver", func(t *testing.T, c *vclient.Client, target string) grpc.ClientConnInterface {
		return dial(t, vclient.Scheme+":///"+target, grpc.WithResolvers(c.ResolverBuilder()))
	}},
}

// dial returns a grpc.ClientConn to target, closed when t ends.
func dial(t *testing.T, target string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(target, append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatalf("dialling %s: %v", target, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func ping(ctx context.Context, conn grpc.ClientConnInterface, msg string, opts ...grpc.CallOption) (*demo.Response, error) {
	return demo.NewDemoClient(conn).Ping(ctx, &demo.Request{Message: msg}, opts...)
}

// testContext is a context for one subtest, bounded by waitLimit.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}

// eventually fails t unless cond becomes true within waitLimit: no
// assertion on time, a hang turned into a failure.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitLimit, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// envelopeBudget bounds what a request's envelope (ids, method, reply
// address, deadline, metadata) adds to the payload in the suite's calls.
const envelopeBudget = 4 << 10

// busMaxPayload is the largest message the bus carries when the bus says so
// (a MaxPayload method, as NATS has: its server's max_payload), else 0.
func (e *e2e) busMaxPayload(t *testing.T) int {
	t.Helper()
	b, err := rpcbus.New(e.bus)
	if err != nil {
		t.Fatalf("opening the bus to read its limit: %v", err)
	}
	defer func() { _ = b.Close() }()
	if m, ok := b.(interface{ MaxPayload() int }); ok {
		return m.MaxPayload()
	}
	return 0
}
