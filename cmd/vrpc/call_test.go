package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/example/demo/demoserver"
	"github.com/nextpkg/vrpc/internal/inproc"
	"github.com/nextpkg/vrpc/vserver"
)

// echoTarget is the demo service that also sends back, as response
// headers, the request metadata it received (x-echo-<name>) and sets a
// trailer, so that tests can see what reached the target.
type echoTarget struct {
	demoserver.Server
}

func (e *echoTarget) Ping(ctx context.Context, req *demo.Request) (*demo.Response, error) {
	in, _ := metadata.FromIncomingContext(ctx)
	echo := metadata.MD{}
	for k, vs := range in {
		if k == "user-id" || strings.HasSuffix(k, "-bin") {
			echo.Append("x-echo-"+k, vs...)
		}
	}
	_ = grpc.SetHeader(ctx, echo)
	_ = grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "done"))
	return e.Server.Ping(ctx, req)
}

// startEcho serves echoTarget (with reflection and grpc.health.v1) and a
// vRPC server with plugins forwarding target to it on bus.
func startEcho(t *testing.T, d *inproc.Deployment, target string, plugins ...vrpc.PluginConf) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	demo.RegisterDemoServer(gs, &echoTarget{demoserver.Server{Name: "echo-target"}})
	healthpb.RegisterHealthServer(gs, health.NewServer())
	reflection.Register(gs)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)

	srv, err := vserver.NewServer(&vrpc.Config{
		Name:    "vrpc-cli-" + target,
		Port:    -1,
		RpcBus:  d.Bus,
		Targets: map[string]vrpc.Target{target: {Endpoint: lis.Addr().String()}},
		Plugins: plugins,
	})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Start() }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-errc; err != nil {
			t.Errorf("echo server: %v", err)
		}
	})
	select {
	case <-srv.Ready():
	case err := <-errc:
		errc <- err
		t.Fatalf("echo server: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("echo server not ready within 30s")
	}
}

// TestCallAndList runs vrpc call and vrpc list against an in-process
// deployment on the embedded Kafka: target "demo" (inproc's demo target)
// and target "echo" (echoTarget).
func TestCallAndList(t *testing.T) {
	// Cleanup, not defer: the parallel subtests run after this function
	// returns.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	d, err := inproc.Start(ctx, inproc.Options{ServerName: "vrpc-cli-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close the deployment: %v", err)
		}
	})
	startEcho(t, d, "echo")
	// Target guarded asks callers for a token.
	startEcho(t, d, "guarded", vrpc.PluginConf{Name: "auth", Enabled: true, Settings: map[string]any{
		"clients": map[string]any{"vrpc-cli-test": map[string]any{"token": "s3cret", "allow": []any{"*"}}},
	}})

	dir := t.TempDir()
	cfg := filepath.Join(dir, "client.yaml")
	yaml := fmt.Sprintf("client_id: vrpc-cli-test\nrpc_bus: {type: kafka, brokers: [%q]}\ntimeout: {request: 20s, connect: 20s}\n", d.Bus.Brokers[0])
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	const pingReply = "{\n  \"message\": \"hi\",\n  \"servedBy\": \"demo-target\"\n}\n"

	// Sequential: these change process-wide state (stdin, environment).
	t.Run("data from stdin", func(t *testing.T) {
		in := filepath.Join(dir, "request.json")
		if err := os.WriteFile(in, []byte(`{"message": "hi"}`+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(in)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		old := os.Stdin
		os.Stdin = f
		defer func() { os.Stdin = old }()
		code, out, errOut := vrpcRun(t, ctx, "call", "-f", cfg, "demo", "Ping", "-d", "@")
		if code != 0 || out != pingReply {
			t.Errorf("exit %d, stdout %q, want 0 and %q\nstderr:\n%s", code, out, pingReply, errOut)
		}
	})
	t.Run("config from environment", func(t *testing.T) {
		t.Setenv(vrpc.ConfigEnv, cfg)
		code, out, errOut := vrpcRun(t, ctx, "call", "demo", "Ping", `{"message": "hi"}`)
		if code != 0 || out != pingReply {
			t.Errorf("exit %d, stdout %q, want 0 and %q\nstderr:\n%s", code, out, pingReply, errOut)
		}
	})

	for _, tc := range []struct {
		name    string
		args    []string
		code    int
		stdout  string   // exact, when not empty
		stdouts []string // each in stdout
		stderr  []string // each in stderr
	}{
		{name: "short method name", args: []string{"call", "-f", cfg, "demo", "Ping", `{"message": "hi"}`}, stdout: pingReply},
		{name: "full method name", args: []string{"call", "-f", cfg, "demo", "demo.Demo/Ping", `{"message": "hi"}`}, stdout: pingReply},
		{name: "full method name with slash", args: []string{"call", "-f", cfg, "demo", "/demo.Demo/Ping", "-d", `{"message": "hi"}`}, stdout: pingReply},
		{name: "method as list prints it", args: []string{"call", "-f", cfg, "demo", "demo.Demo.Ping", "-d", `{"message": "hi"}`}, stdout: pingReply},
		{name: "proto names", args: []string{"call", "-f", cfg, "--proto-names", "demo", "Ping", `{"message": "hi"}`},
			stdout: "{\n  \"message\": \"hi\",\n  \"served_by\": \"demo-target\"\n}\n"},
		{name: "timeout", args: []string{"call", "-f", cfg, "--timeout", "10s", "demo", "Ping", `{"message": "hi"}`}, stdout: pingReply},
		{name: "verbose shows the target's header", args: []string{"call", "-f", cfg, "-v", "demo", "Ping", `{"message": "hi"}`},
			stdout: pingReply, stderr: []string{"Response headers received:\n", "x-served-by: demo-target\n", "Response trailers received:\n"}},
		{name: "metadata reaches the target",
			args:   []string{"call", "-f", cfg, "-v", "-H", "user-id: 12345", "-H", "Trace-Bin: AQID", "echo", "Ping", `{"message": "hi"}`},
			stdout: "{\n  \"message\": \"hi\",\n  \"servedBy\": \"echo-target\"\n}\n",
			stderr: []string{"x-echo-user-id: 12345\n", "x-echo-trace-bin: AQID\n", "x-served-by: echo-target\n", "Response trailers received:\nx-trailer: done\n"}},
		{name: "bad JSON", args: []string{"call", "-f", cfg, "demo", "Ping", `{"message":`}, code: 1,
			stderr: []string{"ERROR:\n  Code: InvalidArgument\n  Message: ", "demo.Request"}},
		{name: "unknown field", args: []string{"call", "-f", cfg, "demo", "Ping", `{"msg": "hi"}`}, code: 1,
			stderr: []string{"ERROR:\n  Code: InvalidArgument\n", "msg"}},
		{name: "unknown method lists the methods", args: []string{"call", "-f", cfg, "demo", "Pong", `{}`}, code: 1,
			stderr: []string{"ERROR:\n  Code: Unimplemented\n  Message: ", "Pong", "/demo.Demo/Ping"}},
		{name: "unknown target", args: []string{"call", "-f", cfg, "nosuch", "Ping", `{"message": "hi"}`}, code: 1,
			stderr: []string{"ERROR:\n  Code: Unimplemented\n  Message: ", "nosuch"}},
		{name: "empty message is the target's error", args: []string{"call", "-f", cfg, "demo", "Ping"}, code: 1,
			stderr: []string{"ERROR:\n  Code: InvalidArgument\n  Message: message must not be empty\n"}},
		{name: "deadline", args: []string{"call", "-f", cfg, "--timeout", "1ns", "demo", "Ping", `{"message": "hi"}`}, code: 1,
			stderr: []string{"ERROR:\n  Code: DeadlineExceeded\n"}},

		{name: "list services", args: []string{"list", "-f", cfg, "demo"}, stdout: "demo.Demo\n"},
		{name: "list services with health", args: []string{"list", "-f", cfg, "echo"}, stdout: "demo.Demo\ngrpc.health.v1.Health\n"},
		{name: "list methods", args: []string{"list", "-f", cfg, "demo", "demo.Demo"}, stdout: "demo.Demo.Ping\n"},
		{name: "list marks streaming methods", args: []string{"list", "-f", cfg, "echo", "grpc.health.v1.Health"},
			stdouts: []string{"grpc.health.v1.Health.Check\n", "grpc.health.v1.Health.Watch (server streaming; not supported by vRPC)\n"}},
		{name: "list unknown service", args: []string{"list", "-f", cfg, "demo", "nosuch.Svc"}, code: 1,
			stderr: []string{"ERROR:\n  Code: NotFound\n  Message: ", `"nosuch.Svc"`, "has: demo.Demo"}},
		{name: "list with a token", args: []string{"list", "-f", cfg, "-H", "vrpc-token: s3cret", "guarded"}, stdout: "demo.Demo\ngrpc.health.v1.Health\n"},
		{name: "list without the token", args: []string{"list", "-f", cfg, "guarded"}, code: 1,
			stderr: []string{"ERROR:\n  Code: Unauthenticated\n"}},
		{name: "call with a token", args: []string{"call", "-f", cfg, "-H", "vrpc-token: s3cret", "guarded", "Ping", `{"message": "hi"}`},
			stdout: "{\n  \"message\": \"hi\",\n  \"servedBy\": \"echo-target\"\n}\n"},
		{name: "list bad header", args: []string{"list", "-f", cfg, "-H", "vrpc-token", "guarded"}, code: 2, stderr: []string{`-H "vrpc-token"`}},
		{name: "list unknown target", args: []string{"list", "-f", cfg, "nosuch"}, code: 1,
			stderr: []string{"ERROR:\n  Code: Unimplemented\n", "nosuch"}},

		{name: "no method", args: []string{"call", "-f", cfg, "demo"}, code: 2, stderr: []string{"accepts between 2 and 3 arg(s)"}},
		{name: "request given twice", args: []string{"call", "-f", cfg, "demo", "Ping", "{}", "-d", "{}"}, code: 2, stderr: []string{"given twice"}},
		{name: "bad header", args: []string{"call", "-f", cfg, "-H", "user-id", "demo", "Ping"}, code: 2, stderr: []string{`-H "user-id"`}},
		{name: "header given twice", args: []string{"call", "-f", cfg, "-H", "a: 1", "-H", "A: 2", "demo", "Ping"}, code: 2, stderr: []string{`header "a" is given twice`}},
		{name: "bad binary header", args: []string{"call", "-f", cfg, "-H", "x-bin: %%", "demo", "Ping"}, code: 2, stderr: []string{"base64"}},
		{name: "missing config file", args: []string{"call", "-f", filepath.Join(dir, "nope.yaml"), "demo", "Ping"}, code: 2, stderr: []string{"nope.yaml"}},
		{name: "list missing config file", args: []string{"list", "-f", filepath.Join(dir, "nope.yaml"), "demo"}, code: 2, stderr: []string{"nope.yaml"}},
		{name: "list no target", args: []string{"list", "-f", cfg}, code: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := vrpcRun(t, ctx, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			if tc.stdout != "" && out != tc.stdout {
				t.Errorf("stdout %q, want %q", out, tc.stdout)
			}
			if tc.code != 0 && out != "" {
				t.Errorf("stdout %q, want nothing on failure", out)
			}
			for _, want := range tc.stderr {
				if !strings.Contains(errOut, want) {
					t.Errorf("stderr does not have %q", want)
				}
			}
			for _, want := range tc.stdouts {
				if !strings.Contains(out, want) {
					t.Errorf("stdout does not have %q", want)
				}
			}
			if t.Failed() {
				t.Logf("vrpc %s\nstdout:\n%s\nstderr:\n%s", strings.Join(tc.args, " "), out, errOut)
			}
		})
	}
}
