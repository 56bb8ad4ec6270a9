package vrpc_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vserver"
)

func TestLoadSeedServerConfig(t *testing.T) {
	var cfg vrpc.Config
	if err := vrpc.LoadConfig("testdata/server.yaml", &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Name != "vrpc-server" || cfg.Host != "0.0.0.0" || cfg.Port != 8080 || cfg.RpcServerConf.ListenOn != "0.0.0.0:9090" {
		t.Fatalf("service keys: %+v", cfg)
	}
	if cfg.RpcBus.Type != "kafka" || len(cfg.RpcBus.Brokers) != 1 || cfg.RpcBus.Settings["compression"] != "gzip" {
		t.Fatalf("rpc_bus: %+v", cfg.RpcBus)
	}
	if cfg.Topics.Request != "vrpc.requests" || cfg.Topics.Response != "vrpc.responses" {
		t.Fatalf("topics: %+v", cfg.Topics)
	}
	demo := cfg.Targets["demo"]
	if demo.Endpoint != "localhost:8081" || demo.Timeout != "30s" {
		t.Fatalf("targets.demo: %+v", demo)
	}
	if ts, err := vrpc.ParseTargetSettings("demo", demo.Settings); err != nil || ts.MaxRetries != 3 {
		t.Fatalf("targets.demo.settings: %+v, %v", ts, err)
	}
	if len(cfg.Plugins) != 1 || cfg.Plugins[0].Name != "logger" || !cfg.Plugins[0].Enabled || cfg.Plugins[0].Settings["level"] != "info" {
		t.Fatalf("plugins: %+v", cfg.Plugins)
	}
	if cfg.MaxInFlight != vrpc.DefaultMaxInFlight || cfg.MaxMessageSize != vrpc.DefaultMaxMessageSize || cfg.DrainTimeout != vrpc.DefaultDrainTimeout {
		t.Fatalf("defaults: %+v", cfg)
	}
}

func TestLoadSeedClientConfig(t *testing.T) {
	var cfg vrpc.ClientConfig
	if err := vrpc.LoadClientConfig("testdata/client.yaml", &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.ClientID != "demo-client" || cfg.RpcBus.Type != "kafka" || cfg.RpcBus.Brokers[0] != "localhost:9092" || !cfg.Debug {
		t.Fatalf("got %+v", cfg)
	}
	if cfg.Timeout.Request != 30*time.Second || cfg.Timeout.Connect != 5*time.Second || cfg.Retry.Count != 3 || cfg.Retry.Interval != 100*time.Millisecond {
		t.Fatalf("timeout/retry: %+v %+v", cfg.Timeout, cfg.Retry)
	}
	if cfg.Topics.Request != "vrpc.requests" || cfg.MaxMessageBytes != 4<<20 {
		t.Fatalf("topics/defaults: %+v", cfg)
	}
}

// TestConfigDefaults: a file with only the required keys gets the
// documented defaults.
func TestConfigDefaults(t *testing.T) {
	var cfg vrpc.Config
	load(t, "targets: {demo: {endpoint: 'localhost:8081'}}\n", &cfg)
	if cfg.Name != "vrpc-server" || cfg.Host != "127.0.0.1" || cfg.Port != 8080 || cfg.RpcBus.Type != "kafka" || cfg.Topics.Request != "vrpc.requests" || cfg.Targets["demo"].Timeout != "30s" {
		t.Fatalf("got %+v", cfg)
	}
	var inGo vrpc.Config
	inGo.SetDefaults()
	if inGo.Host != "127.0.0.1" {
		t.Errorf("SetDefaults: host %q, want the admin endpoint on 127.0.0.1 only", inGo.Host)
	}
	// The limits: the same defaults from YAML as SetDefaults gives a
	// config built in Go.
	var goCfg vrpc.Config
	goCfg.SetDefaults()
	for _, c := range []struct {
		key       string
		yaml, go_ any
	}{
		{"reply_timeout", cfg.ReplyTimeout, goCfg.ReplyTimeout},
		{"dead_letter_timeout", cfg.DeadLetterTimeout, goCfg.DeadLetterTimeout},
		{"max_metadata_bytes", cfg.MaxMetadataBytes, goCfg.MaxMetadataBytes},
		{"max_id_bytes", cfg.MaxIDBytes, goCfg.MaxIDBytes},
		{"max_in_flight_bytes", cfg.MaxInFlightBytes, goCfg.MaxInFlightBytes},
		{"max_in_flight_per_client", cfg.MaxInFlightPerClient, goCfg.MaxInFlightPerClient},
		{"dedup.max_bytes", cfg.Dedup.MaxBytes, goCfg.Dedup.MaxBytes},
		{"max_request_age", cfg.MaxRequestAge, goCfg.MaxRequestAge},
	} {
		if c.yaml != c.go_ {
			t.Errorf("%s: %v from YAML, %v from SetDefaults", c.key, c.yaml, c.go_)
		}
	}
	if cfg.ReplyTimeout != 5*time.Second || cfg.DeadLetterTimeout != 10*time.Second || cfg.MaxMetadataBytes != 64<<10 ||
		cfg.MaxIDBytes != 256 || cfg.MaxInFlightBytes != 64<<20 || cfg.MaxInFlightPerClient != 0 || cfg.Dedup.MaxBytes != 64<<20 ||
		cfg.MaxRequestAge != 10*time.Minute {
		t.Errorf("limit defaults: %+v", cfg)
	}
	var cc vrpc.ClientConfig
	if err := vrpc.LoadClientConfig(writeFile(t, "rpc_bus: {type: kafka}\n"), &cc); err != nil {
		t.Fatal(err)
	}
	if cc.Timeout.Request != 30*time.Second || cc.Retry.Count != 3 || cc.Topics.Response != "vrpc.responses" {
		t.Fatalf("client defaults: %+v", cc)
	}
}

func TestBadConfigNamesTheKey(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{"targets: {demo: {endpoint: 'x:1', timeout: soon}}\n", "targets.demo.timeout"},
		{"targets: {demo: {endpoint: 'x:1', settings: {max_retry: 3}}}\n", `targets.demo.settings: unknown key "max_retry"`},
		{"targets: {demo: {endpoint: 'x:1', settings: {max_retries: lots}}}\n", "targets.demo.settings.max_retries"},
		{"targets: {'de mo': {endpoint: 'x:1'}}\n", "targets.de mo"},
		{"topics: {request: 'a b'}\ntargets: {demo: {endpoint: 'x:1'}}\n", "topics.request"},
		{"port: 70000\ntargets: {demo: {endpoint: 'x:1'}}\n", "port"},
		{"rpc_server_conf: {listen_on: nowhere}\ntargets: {demo: {endpoint: 'x:1'}}\n", "rpc_server_conf.listen_on"},
		{"name: x\n", "targets"},
		{"reply_timeout: -1s\ntargets: {demo: {endpoint: 'x:1'}}\n", "reply_timeout"},
		{"dead_letter_timeout: -1s\ntargets: {demo: {endpoint: 'x:1'}}\n", "dead_letter_timeout"},
		{"max_metadata_bytes: -1\ntargets: {demo: {endpoint: 'x:1'}}\n", "max_metadata_bytes"},
		{"max_id_bytes: 8\ntargets: {demo: {endpoint: 'x:1'}}\n", "max_id_bytes 8: must be at least 64"},
		{"max_in_flight_bytes: 1024\ntargets: {demo: {endpoint: 'x:1'}}\n", "max_in_flight_bytes 1024: must be at least max_message_size"},
		{"max_in_flight_per_client: 2000\ntargets: {demo: {endpoint: 'x:1'}}\n", "max_in_flight_per_client 2000: must be at most max_in_flight"},
		{"dedup: {max_bytes: -1}\ntargets: {demo: {endpoint: 'x:1'}}\n", "dedup.max_bytes"},
	}
	for _, c := range cases {
		var cfg vrpc.Config
		err := vrpc.LoadConfig(writeFile(t, c.yaml), &cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: want an error naming %q, got %v", c.yaml, c.want, err)
		}
	}
	var cc vrpc.ClientConfig
	err := vrpc.LoadClientConfig(writeFile(t, "client_id: 'a/b'\n"), &cc)
	if err == nil || !strings.Contains(err.Error(), "client_id") {
		t.Errorf("client_id: got %v", err)
	}
}

func TestServerRejectsBadSetup(t *testing.T) {
	base := func() *vrpc.Config {
		return &vrpc.Config{Port: -1, RpcBus: rpcbus.Config{Type: "memory"}, Targets: map[string]vrpc.Target{"demo": {Endpoint: "127.0.0.1:1"}}}
	}
	cfg := base()
	cfg.Plugins = []vrpc.PluginConf{{Name: "nosuch", Enabled: true}}
	if _, err := vserver.NewServer(cfg); err == nil || !strings.Contains(err.Error(), `plugins[0].name "nosuch"`) {
		t.Errorf("unknown plugin: got %v", err)
	}
	cfg = base()
	cfg.Plugins = []vrpc.PluginConf{{Name: "nosuch", Enabled: false}}
	s, err := vserver.NewServer(cfg)
	if err != nil {
		t.Errorf("disabled unknown plugin: %v", err)
	} else {
		s.Stop()
	}
	cfg = base()
	cfg.Plugins = []vrpc.PluginConf{{Name: "logger", Enabled: true, Settings: map[string]any{"level": "loud"}}}
	if _, err := vserver.NewServer(cfg); err == nil || !strings.Contains(err.Error(), "level") {
		t.Errorf("bad logger level: got %v", err)
	}
	cfg = base()
	cfg.RpcBus.Type = "kafak"
	if _, err := vserver.NewServer(cfg); err == nil || !strings.Contains(err.Error(), `rpc_bus.type "kafak"`) || !strings.Contains(err.Error(), "kafka") {
		t.Errorf("unknown bus: got %v", err)
	}
}

func load(t *testing.T, yaml string, cfg *vrpc.Config) {
	t.Helper()
	if err := vrpc.LoadConfig(writeFile(t, yaml), cfg); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
