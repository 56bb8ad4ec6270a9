package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/nextpkg/vrpc/example/demo/demoserver"
	"github.com/nextpkg/vrpc/internal/benchkit"
)

func TestMain(m *testing.M) {
	// Goroutines dependencies start from init for the life of the
	// process: ignore those.
	goleak.VerifyTestMain(m, goleak.IgnoreCurrent())
}

// vrpcRun runs the command line in-process and returns its exit status,
// stdout and stderr.
func vrpcRun(t *testing.T, ctx context.Context, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// TestVersion: vrpc version names the release, the Go version, the main
// module and the version of each module a bug report needs, as go.mod
// pins them.
func TestVersion(t *testing.T) {
	code, out, _ := vrpcRun(t, context.Background(), "version")
	if code != 0 || !strings.HasPrefix(out, "vrpc 0.") || !strings.Contains(out, runtime.Version()) {
		t.Fatalf("vrpc version: exit %d, output %q", code, out)
	}
	gomod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out, "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[1], "github.com/nextpkg/vrpc ") {
		t.Errorf("line 2 of %q does not name the main module", out)
	}
	for _, m := range []string{"google.golang.org/grpc", "github.com/twmb/franz-go", "github.com/nats-io/nats.go",
		"github.com/rabbitmq/amqp091-go", "github.com/redis/go-redis/v9", "github.com/eclipse/paho.golang", "github.com/zeromicro/go-zero"} {
		want := ""
		for _, l := range strings.Split(string(gomod), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == m {
				want = m + " " + f[1]
			}
		}
		if want == "" {
			t.Fatalf("go.mod does not require %s", m)
		}
		found := false
		for _, l := range lines {
			if strings.Join(strings.Fields(l), " ") == want {
				found = true
			}
		}
		if !found {
			t.Errorf("vrpc version does not print %q:\n%s", want, out)
		}
	}
}

func TestDemo(t *testing.T) {
	for _, bus := range []string{"embedded", "memory"} {
		t.Run(bus, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			code, out, errOut := vrpcRun(t, ctx, "demo", "--bus", bus)
			if code != 0 {
				t.Fatalf("vrpc demo --bus %s: exit %d\nstdout:\n%s\nstderr:\n%s", bus, code, out, errOut)
			}
			for _, want := range []struct {
				text string
				n    int
			}{
				{"status OK (as expected)", 6},
				{"status INVALID_ARGUMENT (as expected)", 1},
				{`error "message must not be empty"`, 1},
				{`json {"message":"Hello vRPC","servedBy":"demo-target"}`, 1},
				{`served_by="demo-target"`, 5},
				{"All 7 calls ended with the expected status.", 1},
				{"UNEXPECTED", 0},
			} {
				if got := strings.Count(out, want.text); got != want.n {
					t.Errorf("output has %q %d times, want %d", want.text, got, want.n)
				}
			}
			if t.Failed() {
				t.Logf("stdout:\n%s", out)
			}
		})
	}
}

func TestServeBadConfig(t *testing.T) {
	const good = `
name: vrpc-test
port: -1
rpc_bus: {type: memory}
targets:
  demo: {endpoint: "127.0.0.1:1", timeout: 30s}
`
	for _, tc := range []struct {
		name, yaml string
		want       string // in the message
	}{
		{"bad target timeout", strings.Replace(good, "timeout: 30s", "timeout: soon", 1), `targets.demo.timeout "soon"`},
		{"missing endpoint", strings.Replace(good, `endpoint: "127.0.0.1:1", `, "", 1), "targets.demo.endpoint: missing"},
		{"unregistered bus type", strings.Replace(good, "type: memory", "type: kafak", 1), `rpc_bus.type "kafak" is not registered`},
		{"unknown bus setting", strings.Replace(good, "{type: memory}", "{type: kafka, settings: {compresion: gzip}}", 1), "rpc_bus.settings.compresion"},
		{"unknown target setting", strings.Replace(good, "timeout: 30s}", "timeout: 30s, settings: {retries: 3}}", 1), "targets.demo.settings"},
		{"unknown plugin", good + "plugins: [{name: nope}]\n", `plugins[0].name "nope"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "server.yaml")
			if err := os.WriteFile(file, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			code, _, errOut := vrpcRun(t, context.Background(), "serve", "-f", file)
			if code != exitUsage {
				t.Errorf("exit %d, want %d", code, exitUsage)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Errorf("stderr %q does not name %q", errOut, tc.want)
			}
		})
	}

	t.Run("missing file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "nope.yaml")
		code, _, errOut := vrpcRun(t, context.Background(), "serve", "-f", file)
		if code != exitUsage || !strings.Contains(errOut, file) {
			t.Errorf("exit %d, stderr %q: want %d and the file name", code, errOut, exitUsage)
		}
	})
}

// TestServeStops runs a server until its context (SIGINT in the real
// command) ends, and checks it served and stopped cleanly.
func TestServeStops(t *testing.T) {
	port := freePort(t)
	// /readyz wants every target reachable.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := demoserver.Serve(lis, "demo-1")
	defer target.Stop()
	file := filepath.Join(t.TempDir(), "server.yaml")
	yaml := fmt.Sprintf(`
name: vrpc-test
host: 127.0.0.1
port: %d
rpc_bus: {type: embedded, brokers: ["127.0.0.1:0"]}
targets:
  demo: {endpoint: "%s"}
drain_timeout: 5s
`, port, lis.Addr())
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	type result struct {
		code        int
		out, errOut string
	}
	done := make(chan result, 1)
	go func() {
		var stdout, stderr bytes.Buffer
		code := run(ctx, []string{"serve", "-f", file}, &stdout, &stderr)
		done <- result{code, stdout.String(), stderr.String()}
	}()

	waitReady(t, port, func() string {
		select {
		case r := <-done:
			return fmt.Sprintf("%d; stderr:\n%s", r.code, r.errOut)
		default:
			return ""
		}
	})
	http.DefaultClient.CloseIdleConnections()
	cancel()
	r := <-done
	if r.code != 0 {
		t.Fatalf("serve exited %d after its context ended; stderr:\n%s", r.code, r.errOut)
	}
	for _, want := range []string{"hosting the Kafka broker", "vrpc: stopped"} {
		if !strings.Contains(r.errOut, want) {
			t.Errorf("stderr does not say %q:\n%s", want, r.errOut)
		}
	}
}

func TestBench(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code, out, errOut := vrpcRun(t, ctx, "bench", "--bus", "memory", "--duration", "200ms", "--warmup", "50ms",
		"--concurrency", "1,4", "--payload", "16", "--json")
	if code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s", code, errOut)
	}
	var rep benchReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("output is not the JSON report: %v\n%s", err, out)
	}
	if len(rep.Runs) != 2 || rep.Runs[0].Concurrency != 1 || rep.Runs[1].Concurrency != 4 {
		t.Fatalf("runs %+v, want concurrency 1 then 4", rep.Runs)
	}
	for _, run := range rep.Runs {
		var paths []string
		for _, r := range run.Results {
			paths = append(paths, r.Path)
			if r.Calls == 0 || r.Errors != 0 || r.P50 <= 0 || r.P99 < r.P50 {
				t.Errorf("concurrency %d, %s: %+v", run.Concurrency, r.Path, r)
			}
		}
		if want := []string{benchkit.PathDirect, benchkit.PathRaw, benchkit.PathVRPC}; fmt.Sprint(paths) != fmt.Sprint(want) {
			t.Errorf("paths %v, want %v", paths, want)
		}
		if run.TwoHopLimit <= 0 || run.VRPCvsDirect <= 0 || run.VRPCvsLimit <= 0 {
			t.Errorf("concurrency %d: L %v, ratios %v %v", run.Concurrency, run.TwoHopLimit, run.VRPCvsDirect, run.VRPCvsLimit)
		}
	}

	// The table, over the in-process Kafka.
	code, out, errOut = vrpcRun(t, ctx, "bench", "--duration", "200ms", "--warmup", "50ms", "--concurrency", "2")
	if code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s", code, errOut)
	}
	for _, want := range []string{"in-process Kafka", "calls/s", benchkit.PathDirect, benchkit.PathRaw, benchkit.PathVRPC, "L = 1/(1/raw + 1/direct)"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"nope"},
		{"demo", "--bogus"},
		{"demo", "--bus", "rabbit"},
		{"bench", "--concurrency", "0"},
		{"version", "extra"},
		{"--log-level", "loud", "version"},
	} {
		code, _, errOut := vrpcRun(t, context.Background(), args...)
		if code != exitUsage || !strings.HasPrefix(errOut, "vrpc: ") {
			t.Errorf("vrpc %v: exit %d, stderr %q; want %d and a message", args, code, errOut, exitUsage)
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
