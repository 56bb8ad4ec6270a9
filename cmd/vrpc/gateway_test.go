package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/internal/inproc"
)

// TestGatewayServesAndStops runs `vrpc gateway` over an in-memory bus,
// calls the demo target through it, and stops it as SIGINT would.
func TestGatewayServesAndStops(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := inproc.Start(ctx, inproc.Options{Bus: inproc.BusMemory})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	file := filepath.Join(t.TempDir(), "client.yaml")
	yaml := fmt.Sprintf(`
client_id: gateway-test
rpc_bus: {type: memory, brokers: [%s]}
services: {demo.Demo: %s}
gateway:
  listen: 127.0.0.1:1   # --listen overrides it
  drain_timeout: 5s
`, d.Bus.Brokers[0], d.Target)
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	type result struct {
		code   int
		errOut string
	}
	done := make(chan result, 1)
	go func() {
		var stdout, stderr bytes.Buffer
		code := run(runCtx, []string{"gateway", "-f", file, "--listen", addr}, &stdout, &stderr)
		done <- result{code, stderr.String()}
	}()

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for {
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		if err == nil && resp.Status == healthpb.HealthCheckResponse_SERVING {
			break
		}
		select {
		case r := <-done:
			t.Fatalf("gateway exited %d before it served; stderr:\n%s", r.code, r.errOut)
		case <-ctx.Done():
			t.Fatal("gateway not SERVING within a minute")
		case <-time.After(20 * time.Millisecond):
		}
	}
	resp, err := demo.NewDemoClient(conn).Ping(ctx, &demo.Request{Message: "through the gateway"})
	if err != nil || resp.Message != "through the gateway" || resp.ServedBy != inproc.TargetName {
		t.Fatalf("Ping through vrpc gateway = %v, %v", resp, err)
	}

	stop()
	r := <-done
	if r.code != 0 {
		t.Fatalf("gateway exited %d after its context ended; stderr:\n%s", r.code, r.errOut)
	}
	for _, want := range []string{"serving gRPC on " + addr, "demo.Demo -> " + d.Target, "vrpc gateway: stopped"} {
		if !strings.Contains(r.errOut, want) {
			t.Errorf("stderr does not say %q:\n%s", want, r.errOut)
		}
	}
}

func TestGatewayBadConfig(t *testing.T) {
	const good = `
rpc_bus: {type: memory}
services: {demo.Demo: demo}
gateway: {listen: "127.0.0.1:0"}
`
	for _, tc := range []struct {
		name, yaml string
		args       []string
		want       string
	}{
		{"bad listen flag", good, []string{"--listen", "nowhere"}, `--listen "nowhere"`},
		{"bad max_message_bytes", strings.Replace(good, `{listen: "127.0.0.1:0"}`, `{max_message_bytes: -1}`, 1), nil, "gateway.max_message_bytes -1"},
		{"bad listen", strings.Replace(good, `"127.0.0.1:0"`, `"nowhere"`, 1), nil, `gateway.listen "nowhere"`},
		{"bad service target", strings.Replace(good, "demo.Demo: demo", "demo.Demo: 'no/pe'", 1), nil, "services.demo.Demo"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "client.yaml")
			if err := os.WriteFile(file, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			code, _, errOut := vrpcRun(t, context.Background(), append([]string{"gateway", "-f", file}, tc.args...)...)
			if code != exitUsage || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want %d naming %q", code, errOut, exitUsage, tc.want)
			}
		})
	}
}

// TestGatewayListensOnlyOnceOnTheBus: a gateway whose bus cannot be
// reached never opens its port (callers would wait on a gateway that
// cannot carry their calls), and exits with a failure. The "broker"
// accepts connections and never answers, so the gateway waits on it for
// timeout.connect.
func TestGatewayListensOnlyOnceOnTheBus(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	t.Cleanup(func() {
		silent.Close()
		<-accepted
		for _, c := range held {
			c.Close()
		}
	})
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	file := filepath.Join(t.TempDir(), "client.yaml")
	yaml := fmt.Sprintf("rpc_bus: {type: kafka, brokers: [%q]}\ntimeout: {connect: 1s}\ngateway: {listen: %q}\n", silent.Addr().String(), addr)
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	// The gateway waits for its bus as long as it takes (not
	// timeout.connect, which is for one-shot commands), its port closed,
	// until it is stopped.
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan int, 1)
	go func() {
		code, _, _ := vrpcRun(t, ctx, "gateway", "-f", file)
		done <- code
	}()
	for polls := 0; polls < 100; polls++ {
		select {
		case code := <-done:
			t.Fatalf("the gateway exited %d after %d polls of its port; want it to wait for its bus", code, polls)
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			c.Close()
			t.Fatal("the gateway listens before it reached the bus")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("exit %d after a stop while waiting for the bus, want %d", code, exitOK)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the gateway did not stop within 30s of its context's end while waiting for the bus")
	}
}
