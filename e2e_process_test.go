package vrpc_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/internal/vtest"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vclient"
)

const (
	helperBrokerEnv = "VRPC_TEST_HELPER_BROKER"
	helperCalls     = 200
)

// TestTwoProcessesSameClientID runs a second client process (this test
// binary again) with the same client_id as a client here; both make calls
// at the same time and each must get exactly its own replies.
func TestTwoProcessesSameClientID(t *testing.T) {
	bus := vtest.StartKafka(t)
	addr := vtest.StartDemo(t, "t1")
	vtest.StartServer(t, vtest.ServerConfig(bus, map[string]vrpc.Target{"demo": {Endpoint: addr}}))
	local := vtest.NewClient(t, bus, "shared")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperClientProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperBrokerEnv+"="+bus.Brokers[0])
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := vtest.CallMany(ctx, vclient.NewConn(local, "demo"), "local", helperCalls, "t1"); err != nil {
		t.Error(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper process: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), fmt.Sprintf("helper ok %d", helperCalls)) {
		t.Fatalf("helper process output:\n%s", out.String())
	}
}

// TestHelperClientProcess is the second process of
// TestTwoProcessesSameClientID; it does nothing when run on its own.
func TestHelperClientProcess(t *testing.T) {
	broker := os.Getenv(helperBrokerEnv)
	if broker == "" {
		t.Skip("runs only as the helper process of TestTwoProcessesSameClientID")
	}
	c, err := vclient.New(vclient.Config{ClientID: "shared", RpcBus: rpcbus.Config{Type: "kafka", Brokers: []string{broker}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	if err := vtest.CallMany(ctx, vclient.NewConn(c, "demo"), "remote", helperCalls, "t1"); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("helper ok %d\n", helperCalls)
}
