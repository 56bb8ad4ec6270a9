package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"testing"
	"time"
)

// helperServeEnv names the configuration file of a TestHelperServeProcess.
const helperServeEnv = "VRPC_TEST_HELPER_SERVE"

// TestHelperServeProcess is `vrpc serve -f $VRPC_TEST_HELPER_SERVE` in a
// process of its own: the server processes of TestBenchChaos. It does
// nothing when run on its own.
func TestHelperServeProcess(t *testing.T) {
	file := os.Getenv(helperServeEnv)
	if file == "" {
		t.Skip("runs only as a server process of TestBenchChaos")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if code := run(ctx, []string{"serve", "-f", file, "--log-level", "error"}, os.Stdout, os.Stderr); code != 0 {
		t.Fatalf("vrpc serve exited %d", code)
	}
}

// TestBenchChaos runs `vrpc bench --chaos` briefly: two server processes,
// one killed with SIGKILL and started again every 4s for 20s, while calls
// flow. No call may be lost or answered wrongly, each kill may leave at
// most the killed server's max_in_flight (64) calls failed, and with the
// Redis store no call may run twice.
func TestBenchChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("a 20s soak")
	}
	t.Cleanup(func(old func(string) (*exec.Cmd, error)) func() {
		return func() { chaosServerCommand = old }
	}(chaosServerCommand))
	chaosServerCommand = func(file string) (*exec.Cmd, error) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperServeProcess$", "-test.count=1", "-test.timeout=5m")
		cmd.Env = append(os.Environ(), helperServeEnv+"="+file)
		return cmd, nil
	}
	dedup := "redis"
	if err := pingRedis(context.Background(), "127.0.0.1:6379"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Redis at 127.0.0.1:6379: %v", err)
		}
		t.Logf("Redis at 127.0.0.1:6379: %v; running with --dedup memory, where a call may run twice", err)
		dedup = "memory"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	code, out, errOut := vrpcRun(t, ctx, "bench", "--chaos", "--duration", "20s", "--chaos-interval", "4s",
		"--concurrency", "16", "--dedup", dedup, "--json")
	t.Logf("stderr:\n%s", errOut)
	var rep chaosReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("exit %d; output is not the JSON report: %v\n%s", code, err, out)
	}
	t.Logf("%+v", rep)
	if code != 0 {
		t.Errorf("exit %d", code)
	}
	if rep.Kills < 3 || rep.Exits != 0 {
		t.Errorf("kills %d, unexpected exits %d; want at least 3 kills and no other exits", rep.Kills, rep.Exits)
	}
	if rep.Calls == 0 || rep.OK == 0 || rep.OK+rep.Failed+rep.Lost+rep.Wrong != rep.Calls {
		t.Errorf("calls %d, ok %d, failed %d, lost %d, wrong %d: the counts do not add up", rep.Calls, rep.OK, rep.Failed, rep.Lost, rep.Wrong)
	}
	if rep.Lost != 0 || rep.Wrong != 0 {
		t.Errorf("lost %d, wrong %d; want none", rep.Lost, rep.Wrong)
	}
	if rep.Failed > 64*rep.Kills {
		t.Errorf("%d calls failed over %d kills; want at most 64 (max_in_flight) a kill", rep.Failed, rep.Kills)
	}
	if dedup == "redis" && rep.Duplicated != 0 {
		t.Errorf("%d calls ran twice with the shared Redis store; want none", rep.Duplicated)
	}
}
