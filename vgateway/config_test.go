package vgateway_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/vgateway"
)

func writeFile(t *testing.T, text string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "client.yaml")
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	const yaml = `
client_id: gw
rpc_bus: {type: kafka, brokers: [localhost:9092]}
services: {demo.Demo: demo, "other.": other}
gateway:
  listen: 0.0.0.0:9100
  max_message_bytes: 1048576
`
	var cfg vgateway.FileConfig
	if err := vgateway.LoadConfig(writeFile(t, yaml), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.ClientID != "gw" || cfg.Services["other."] != "other" || cfg.Timeout.Request != 30*time.Second {
		t.Errorf("client section %+v", cfg.Config)
	}
	want := vgateway.Config{Listen: "0.0.0.0:9100", MaxMessageBytes: 1 << 20, DrainTimeout: 30 * time.Second,
		MaxConcurrentStreams: 1024, MaxInFlightBytes: 256 << 20}
	want.Keepalive.Time, want.Keepalive.Timeout, want.Keepalive.MinTime = time.Minute, 20*time.Second, 10*time.Second
	if cfg.Gateway != want {
		t.Errorf("gateway section %+v, want %+v", cfg.Gateway, want)
	}

	// Without a gateway section: the defaults.
	cfg = vgateway.FileConfig{}
	if err := vgateway.LoadConfig(writeFile(t, "rpc_bus: {type: kafka}\n"), &cfg); err != nil {
		t.Fatal(err)
	}
	want = vgateway.Config{Listen: vgateway.DefaultListen, MaxMessageBytes: vgateway.DefaultMaxMessageBytes, DrainTimeout: vgateway.DefaultDrainTimeout,
		MaxConcurrentStreams: vgateway.DefaultMaxConcurrentStreams, MaxInFlightBytes: vgateway.DefaultMaxInFlightBytes}
	want.Keepalive.Time, want.Keepalive.Timeout, want.Keepalive.MinTime = vgateway.DefaultKeepaliveTime, vgateway.DefaultKeepaliveTimeout, vgateway.DefaultKeepaliveMinTime
	if cfg.Gateway != want {
		t.Errorf("default gateway section %+v, want %+v", cfg.Gateway, want)
	}

	// The same file still loads as a plain client config.
	var plain vrpc.ClientConfig
	if err := vrpc.LoadClientConfig(writeFile(t, yaml), &plain); err != nil || plain.ClientID != "gw" {
		t.Errorf("LoadClientConfig of a file with a gateway section: %+v, %v", plain, err)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ yaml, want string }{
		{"gateway: {listen: nowhere}\n", `gateway.listen "nowhere"`},
		{"gateway: {max_message_bytes: -1}\n", "gateway.max_message_bytes -1"},
		{"gateway: {drain_timeout: -1s}\n", "gateway.drain_timeout -1s"},
		{"gateway: {max_in_flight_bytes: -1}\n", "gateway.max_in_flight_bytes -1"},
		{"gateway: {max_in_flight_bytes: 1048576}\n", "raise it to at least 4194304"},
		{"gateway: {keepalive: {min_time: -1s}}\n", "gateway.keepalive.min_time -1s"},
		{"gateway: {max_header_list_bytes: -1}\n", "gateway.max_header_list_bytes -1"},
		{"max_pending_bytes: 1024\n", "max_pending_bytes 1024 is below max_message_bytes"},
		{"max_metadata_bytes: -5\n", "max_metadata_bytes -5"},
		{"services: {demo.Demo: 'a/b'}\n", "services.demo.Demo"},
	} {
		var cfg vgateway.FileConfig
		err := vgateway.LoadConfig(writeFile(t, "rpc_bus: {type: kafka}\n"+tc.yaml), &cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error naming %s", tc.yaml, err, tc.want)
		}
	}
}

func TestLoadConfigUnknownKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ yaml, want string }{
		{"rpc_bus: {type: memory}\ngateway: {listn: 127.0.0.1:0}\n", "gateway.listn: unknown key (did you mean listen?)"},
		{"rpc_bus: {type: memory}\ngateway: {keepalive: {min_tme: 1s}}\n", "gateway.keepalive.min_tme: unknown key (did you mean min_time?)"},
		{"rpc_bus: {type: memory, setings: {}}\n", "rpc_bus.setings: unknown key (did you mean settings?)"},
		{"rpc_bus: {type: memory}\nmax_pendng: 1\n", "max_pendng: unknown key (did you mean max_pending?)"},
	} {
		var cfg vgateway.FileConfig
		err := vgateway.LoadConfig(writeFile(t, tc.yaml), &cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

// The example client.yaml loads with its gateway section, and the README's
// client.yaml block has no key the gateway does not know (its files do not
// exist here, so Validate may fail, but not on a key).
func TestLoadConfigExamples(t *testing.T) {
	t.Parallel()
	var cfg vgateway.FileConfig
	if err := vgateway.LoadConfig("../example/client.yaml", &cfg); err != nil {
		t.Error(err)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "### client.yaml\n\n```yaml\n")
	block, _, _ = strings.Cut(block, "```")
	if !ok || !strings.Contains(block, "gateway:") {
		t.Fatalf("README has no client.yaml block with a gateway section")
	}
	if err := vgateway.LoadConfig(writeFile(t, block), &cfg); err != nil && strings.Contains(err.Error(), "unknown key") {
		t.Error(err)
	}
}
