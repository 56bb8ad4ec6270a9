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

	"github.com/nextpkg/vrpc/internal/vtest"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/embedded"
)

// TestCallWithoutBroker: vrpc call with no broker listening fails within
// timeout.connect, with exit status 69 and a message naming the bus, its
// address and the timeout, on every bus.
func TestCallWithoutBroker(t *testing.T) {
	for _, kind := range []string{"kafka", "nats", "amqp", "redis", "mqtt"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			addr := fmt.Sprintf("127.0.0.1:%d", freePort(t)) // nothing listens there
			file := filepath.Join(t.TempDir(), "client.yaml")
			yaml := fmt.Sprintf("client_id: cli-no-broker\nrpc_bus: {type: %s, brokers: [%q]}\ntimeout: {connect: 1s}\n", kind, addr)
			if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			start := time.Now()
			code, out, errOut := vrpcRun(t, ctx, "call", "-f", file, "demo", "Ping", `{"message": "hi"}`)
			took := time.Since(start)
			if code != exitUnavailable {
				t.Fatalf("exit %d, want %d; stdout %q, stderr:\n%s", code, exitUnavailable, out, errOut)
			}
			for _, want := range []string{kind + " bus at " + addr, "timeout.connect 1s", "is it running"} {
				if !strings.Contains(errOut, want) {
					t.Errorf("stderr does not say %q:\n%s", want, errOut)
				}
			}
			if took > 20*time.Second {
				t.Errorf("vrpc call took %v to give up with timeout.connect 1s", took)
			}
			t.Logf("%s: exit %d after %v: %s", kind, code, took.Round(time.Millisecond), strings.TrimSpace(errOut))
		})
	}
}

// TestGatewayBeforeBroker: vrpc gateway started before its broker waits
// for it, saying so, with its gRPC port closed; once the broker is up it
// opens the port; a stop ends it cleanly.
func TestGatewayBeforeBroker(t *testing.T) {
	kafka := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	file := filepath.Join(t.TempDir(), "client.yaml")
	yaml := fmt.Sprintf("client_id: gw-before-broker\nrpc_bus: {type: kafka, brokers: [%q]}\ngateway: {listen: %q}\n", kafka, listen)
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		code   int
		errOut string
	}
	done := make(chan result, 1)
	var stderr vtest.Buffer
	go func() {
		var stdout bytes.Buffer
		code := run(ctx, []string{"gateway", "-f", file}, &stdout, &stderr)
		done <- result{code, stderr.String()}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(stderr.String(), "waiting for the kafka bus at "+kafka) {
		if time.Now().After(deadline) {
			t.Fatalf("the gateway does not say it waits for its bus within 20s; stderr:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if c, err := net.Dial("tcp", listen); err == nil {
		c.Close()
		t.Fatal("the gateway's port is open before it reached its bus")
	}
	select {
	case r := <-done:
		t.Fatalf("the gateway exited %d without its broker; stderr:\n%s", r.code, r.errOut)
	default:
	}

	e, err := embedded.Start(kafka)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	deadline = time.Now().Add(time.Minute)
	for {
		c, err := net.Dial("tcp", listen)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway's port did not open within 1m of the broker's start: %v; stderr:\n%s", err, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	r := <-done
	if r.code != 0 {
		t.Fatalf("gateway exited %d after its context ended; stderr:\n%s", r.code, r.errOut)
	}
}

// TestCallNoServer: a call to a target whose request topic exists but
// that no server serves says, while it waits, what it waits for.
func TestCallNoServer(t *testing.T) {
	e, err := embedded.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	bus, err := rpcbus.New(rpcbus.Config{Type: "kafka", Brokers: []string{e.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := bus.(rpcbus.TopicCreator).CreateTopics(ctx, "vrpc.requests.idle"); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "client.yaml")
	if err := os.WriteFile(file, []byte(fmt.Sprintf("client_id: cli-no-server\nrpc_bus: {type: kafka, brokers: [%q]}\n", e.Addr())), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := vrpcRun(t, ctx, "call", "-f", file, "--timeout", "4s", "idle", "demo.Demo/Ping", `{}`)
	if code != exitFailure || !strings.Contains(errOut, "DeadlineExceeded") {
		t.Fatalf("exit %d, want %d with DeadlineExceeded; stderr:\n%s", code, exitFailure, errOut)
	}
	for _, want := range []string{"no reply yet", "vrpc.requests.idle", "Is a server (vrpc serve) running"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr does not say %q:\n%s", want, errOut)
		}
	}
}
