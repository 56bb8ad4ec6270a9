package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nextpkg/vrpc/internal/benchkit"
	"github.com/nextpkg/vrpc/internal/inproc"
)

// needServer skips t when nothing answers at addr, or fails it under CI,
// where the machine's servers must be up.
func needServer(t *testing.T, addr string) {
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

// TestBenchBuses runs a short bench over each bus with a server of its
// own; only that it measures every path without failures is checked.
func TestBenchBuses(t *testing.T) {
	for _, tc := range []struct{ bus, addr string }{
		{inproc.BusNATS, inproc.DefaultNATSServer},
		{inproc.BusAMQP, inproc.DefaultAMQPBroker},
		{inproc.BusRedis, inproc.DefaultRedisServer},
		{inproc.BusMQTT, inproc.DefaultMQTTBroker},
	} {
		t.Run(tc.bus, func(t *testing.T) {
			needServer(t, tc.addr)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			code, out, errOut := vrpcRun(t, ctx, "bench", "--bus", tc.bus, "--brokers", tc.addr,
				"--duration", "200ms", "--warmup", "50ms", "--concurrency", "1,4", "--json")
			if code != 0 {
				t.Fatalf("exit %d\nstderr:\n%s", code, errOut)
			}
			var rep benchReport
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("output is not the JSON report: %v\n%s", err, out)
			}
			if rep.Type != tc.bus || len(rep.Runs) != 2 {
				t.Fatalf("bus %q, %d runs: want %s at two concurrencies", rep.Type, len(rep.Runs), tc.bus)
			}
			for _, run := range rep.Runs {
				for _, r := range run.Results {
					if r.Calls == 0 || r.Errors != 0 {
						t.Errorf("concurrency %d, %s: %+v", run.Concurrency, r.Path, r)
					}
				}
				if run.TwoHopLimit <= 0 || run.VRPCvsLimit <= 0 {
					t.Errorf("concurrency %d: L %v, vRPC/L %v", run.Concurrency, run.TwoHopLimit, run.VRPCvsLimit)
				}
			}
		})
	}
}

// TestBenchAll runs --bus all briefly and checks the table has a row for
// every bus.
func TestBenchAll(t *testing.T) {
	for _, addr := range []string{inproc.DefaultNATSServer, inproc.DefaultAMQPBroker, inproc.DefaultRedisServer, inproc.DefaultMQTTBroker} {
		needServer(t, addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	code, out, errOut := vrpcRun(t, ctx, "bench", "--bus", "all", "--duration", "100ms", "--warmup", "20ms", "--concurrency", "2", "--rounds", "2")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	rows := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 2 && f[1] == "2" && f[2] == "|" {
			rows[f[0]] = true
		}
	}
	for _, bus := range allBuses {
		if !rows[bus] {
			t.Errorf("no row for %s:\n%s", bus, out)
		}
	}
	for _, want := range []string{benchkit.PathDirect, "raw bus", "vRPC p50", "L = 1/(1/raw + 1/direct)"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestBenchUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "--bus", "rabbit"}, "nats, amqp, redis, mqtt, or all"},
		{[]string{"bench", "--bus", "all", "--brokers", "127.0.0.1:4222"}, "--bus all"},
		{[]string{"bench", "--rounds", "0"}, "--rounds 0"},
		{[]string{"bench", "--rounds", "2", "--cpuprofile", "p"}, "--rounds 1"},
	} {
		code, _, errOut := vrpcRun(t, context.Background(), tc.args...)
		if code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("vrpc %v: exit %d, stderr %q; want %d and %q", tc.args, code, errOut, exitUsage, tc.want)
		}
	}
}

// TestBenchProfile checks that --cpuprofile writes a profile per path.
func TestBenchProfile(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	prefix := filepath.Join(t.TempDir(), "p")
	code, _, errOut := vrpcRun(t, ctx, "bench", "--bus", "memory", "--duration", "100ms", "--warmup", "0s",
		"--concurrency", "1", "--cpuprofile", prefix)
	if code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s", code, errOut)
	}
	for _, path := range []string{"direct-grpc", "raw-bus", "vrpc"} {
		name := prefix + "-memory-c1-" + path + ".pprof"
		if st, err := os.Stat(name); err != nil || st.Size() == 0 {
			t.Errorf("profile %s: %v", name, err)
		}
	}
}
