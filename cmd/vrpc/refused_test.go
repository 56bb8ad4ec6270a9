package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/nextpkg/vrpc/rpcbus/embedded"
)

// TestCallRefused: when the bus refuses the client (a reply topic needing
// more replicas than there are brokers, a wrong SASL password), vrpc call
// says so with the fix, not under the label of a bad client
// configuration, and does not wait for a deadline.
func TestCallRefused(t *testing.T) {
	t.Parallel()
	plain, err := embedded.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(plain.Close)
	sasl, err := embedded.Start("127.0.0.1:0", kfake.EnableSASL(), kfake.Superuser("PLAIN", "vrpc", "s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sasl.Close)
	for _, tc := range []struct {
		name, bus string
		want      []string
	}{
		{"replication factor", `{type: kafka, brokers: ["` + plain.Addr() + `"], settings: {replication_factor: 3}}`,
			[]string{"the bus refused the client", "replication_factor 3", "INVALID_REPLICATION_FACTOR", "start the missing brokers"}},
		{"wrong password", `{type: kafka, brokers: ["` + sasl.Addr() + `"], settings: {sasl_mechanism: PLAIN, username: vrpc, password: guess}}`,
			[]string{"the bus refused the client", `SASL user "vrpc"`, "rpc_bus.settings.username and password"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			file := filepath.Join(t.TempDir(), "client.yaml")
			yaml := "client_id: cli\ntimeout: {connect: 60s}\nrpc_bus: " + tc.bus + "\n"
			if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			code, _, errOut := vrpcRun(t, ctx, "call", "-f", file, "demo", "Ping", `{}`)
			t.Logf("exit %d: %s", code, errOut)
			if code != exitUsage {
				t.Errorf("exit %d, want %d", code, exitUsage)
			}
			if strings.Contains(errOut, "client config") || strings.Contains(errOut, "deadline") {
				t.Errorf("stderr %q: labelled a bad configuration, or waited for a deadline", errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q does not say %q", errOut, w)
				}
			}
		})
	}
}
