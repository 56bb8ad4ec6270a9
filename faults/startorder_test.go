package faults_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/nextpkg/vrpc/faults"
	"github.com/nextpkg/vrpc/internal/vtest"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vclient"
	"github.com/nextpkg/vrpc/vserver"
)

// TestStartBeforeBroker starts a vRPC server and a client before their
// broker, on every bus: the server must wait, its admin endpoint up but
// /readyz not ready (saying what it waits for) and its gRPC health
// NOT_SERVING, and the client must wait too; once the broker starts, the
// server must become ready and a call must succeed. The brokers are
// private processes (the in-process Kafka on a fixed free port) that the
// test starts late.
func TestStartBeforeBroker(t *testing.T) {
	for _, tc := range []struct {
		kind  string
		start func(testing.TB) outageBroker
	}{
		{"kafka", startEmbeddedKafka},
		{"nats", startNATS},
		{"amqp", startRabbitMQ},
		{"redis", func(t testing.TB) outageBroker { return startRedis(t, false) }},
		{"mqtt", func(t testing.TB) outageBroker { return startMosquitto(t, syscall.SIGTERM) }},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			t.Parallel()
			var broker outageBroker
			if tc.kind == "kafka" {
				broker = newEmbeddedKafka(t)
			} else {
				broker = later(t, tc.start)
			}
			testStartBeforeBroker(t, tc.kind, broker)
		})
	}
}

func testStartBeforeBroker(t *testing.T, kind string, broker outageBroker) {
	bus := newTestBus(t, kind, broker.Addr())
	ts := startTarget(t, &faults.Target{Name: "start-order"})

	var logs vtest.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg := bus.serverConfig(ts.Addr(), "early")
	cfg.Port = 0 // the admin endpoint, on a free port
	cfg.RpcServerConf.ListenOn = "127.0.0.1:0"
	srv, err := vserver.NewServer(cfg, vserver.WithLogger(log))
	if err != nil {
		t.Fatalf("NewServer with the broker down: %v", err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Start() }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-errc; err != nil {
			t.Errorf("Start returned %v after Stop", err)
		}
	})

	type opened struct {
		c   *vclient.Client
		err error
	}
	clientc := make(chan opened, 1)
	waitCtx, stopWaiting := context.WithCancel(context.Background())
	defer stopWaiting()
	go func() {
		ccfg := vclient.Config{ClientID: "faults-" + bus.unique + "-early", RpcBus: bus.cfg}
		ccfg.Topics.Request, ccfg.Topics.Response = bus.requests, bus.responses
		c, err := vclient.New(ccfg, vclient.WithWaitForBus(waitCtx), vclient.WithLogger(log))
		clientc <- opened{c, err}
	}()

	// Waiting: the admin endpoint answers, /readyz is not ready and names
	// the bus it waits for, the gRPC health is NOT_SERVING, the log says
	// what the server waits for, and neither the server nor the client
	// has given up.
	eventually(t, "the admin endpoint", 10*time.Second, func() bool { return srv.AdminAddr() != "" && srv.RPCAddr() != "" })
	admin := "http://" + srv.AdminAddr()
	if code, body := get(t, admin+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz while waiting for the bus: %d %s", code, body)
	}
	want := "waiting for the " + kind + " bus at " + broker.Addr()
	eventually(t, "a log line saying what the server waits for", 20*time.Second, func() bool {
		return strings.Contains(logs.String(), want)
	})
	code, body := get(t, admin+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "[-]bus failed: "+want) {
		t.Fatalf("/readyz while waiting for the bus: %d\n%s\nwant 503 with a bus line %q", code, body, want)
	}
	if st := healthStatus(t, srv.RPCAddr()); st != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("gRPC health while waiting for the bus: %v, want NOT_SERVING", st)
	}
	select {
	case err := <-errc:
		t.Fatalf("Start returned %v with the broker down; want it to wait", err)
	case o := <-clientc:
		t.Fatalf("vclient.New returned (%v) with the broker down; want it to wait", o.err)
	case <-srv.Ready():
		t.Fatal("server ready with the broker down")
	default:
	}
	t.Logf("waiting, /readyz says:\n%s", body)

	broker.Start(t)
	up := time.Now()
	select {
	case <-srv.Ready():
	case err := <-errc:
		t.Fatalf("Start returned %v once the broker was up", err)
	case <-time.After(time.Minute):
		t.Fatalf("server not ready within 1m of the broker's start; log:\n%s", logs.String())
	}
	var c *vclient.Client
	select {
	case o := <-clientc:
		if o.err != nil {
			t.Fatalf("vclient.New once the broker was up: %v", o.err)
		}
		c = o.c
		t.Cleanup(func() { _ = c.Close() })
	case <-time.After(time.Minute):
		t.Fatalf("vclient.New did not return within 1m of the broker's start; log:\n%s", logs.String())
	}
	t.Logf("%s: server and client reached the broker %v after it started", kind, time.Since(up).Round(time.Millisecond))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if reply, err := faults.DemoCaller(c, target)(ctx, "after-start"); err != nil || reply == "" {
		t.Fatalf("call once the broker is up: %q, %v", reply, err)
	}
	eventually(t, "/readyz ready", 30*time.Second, func() bool {
		code, _ := get(t, admin+"/readyz")
		return code == http.StatusOK
	})
	if st := healthStatus(t, srv.RPCAddr()); st != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("gRPC health once consuming: %v, want SERVING", st)
	}
	if !strings.Contains(logs.String(), "reached the "+kind+" bus") {
		t.Errorf("the log does not say the bus was reached:\n%s", logs.String())
	}
}

// TestStopWhileWaitingForBroker stops a server that waits for a broker
// that never starts: Stop must end the wait and Start return nil.
func TestStopWhileWaitingForBroker(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"kafka", "nats", "redis"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			bus := newTestBus(t, kind, freeAddr(t))
			srv, err := vserver.NewServer(bus.serverConfig("127.0.0.1:1", "never"), vserver.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
			if err != nil {
				t.Fatal(err)
			}
			errc := make(chan error, 1)
			go func() { errc <- srv.Start() }()
			time.Sleep(300 * time.Millisecond) // into the wait
			stopped := make(chan struct{})
			go func() { srv.Stop(); close(stopped) }()
			select {
			case <-stopped:
			case <-time.After(20 * time.Second):
				t.Fatal("Stop did not return within 20s while the server waited for its bus")
			}
			if err := <-errc; err != nil {
				t.Fatalf("Start after a Stop during the wait: %v, want nil", err)
			}
		})
	}
}

func get(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func healthStatus(t testing.TB, addr string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatalf("gRPC health check on %s: %v", addr, err)
	}
	return resp.GetStatus()
}

// TestStartRefusedNotAwaited: a server whose broker answers and refuses
// it (NATS with a wrong password) does not wait as for a broker that is
// down: started before the broker, Start fails once the broker is up and
// refuses; started after, NewServer fails at once.
func TestStartRefusedNotAwaited(t *testing.T) {
	t.Parallel()
	bin := needBinary(t, "nats-server", "/usr/sbin/nats-server", "nats-server")
	dir, addr := t.TempDir(), freeAddr(t)
	broker := later(t, func(t testing.TB) outageBroker {
		return startBrokerProcess(t, &brokerProcess{
			name: "nats-server", addr: addr, dir: dir, stopSignal: syscall.SIGKILL,
			command: []string{bin, "-a", "127.0.0.1", "-p", splitPort(t, addr), "-js", "-sd", filepath.Join(dir, "jetstream"),
				"--user", "vrpc", "--pass", "right"},
		})
	})
	bus := newTestBus(t, "nats", broker.Addr())
	bus.cfg.Brokers = []string{"nats://vrpc:wrong@" + broker.Addr()}
	quiet := vserver.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	srv, err := vserver.NewServer(bus.serverConfig("127.0.0.1:1", "refused"), quiet)
	if err != nil {
		t.Fatalf("NewServer with the broker down: %v", err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Start() }()
	defer srv.Stop()
	time.Sleep(500 * time.Millisecond) // into the wait
	broker.Start(t)
	select {
	case err := <-errc:
		if err == nil || rpcbus.Unreachable(err) {
			t.Fatalf("Start with a refused password: %v; want an error that is not ErrUnavailable", err)
		}
		t.Logf("Start, broker started late and refusing: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("Start still waits 30s after the broker started and refused the password")
	}

	_, err = vserver.NewServer(bus.serverConfig("127.0.0.1:1", "refused"), quiet)
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("NewServer with the broker up and refusing: %v; want an authorization error", err)
	}
	t.Logf("NewServer, broker up and refusing: %v", err)
}
