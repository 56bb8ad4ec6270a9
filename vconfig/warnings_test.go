package vconfig_test

import (
	"strings"
	"testing"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vconfig"
)

func TestLoopback(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{
		"127.0.0.1:9092": true, "localhost:4222": true, "[::1]:6379": true, "nats://u:p@127.0.0.1:4222": true,
		"amqp://127.0.0.2/vhost": true, "10.0.0.1:9092": false, "0.0.0.0:9092": false, ":9092": false,
		"kafka.example:9092": false, "tls://broker:8883": false, "[::]:1": false,
	} {
		if got := vconfig.Loopback(addr); got != want {
			t.Errorf("Loopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

// TestBusWarnings: plain text off this machine and certificates not
// verified are warned about, each once, naming the key to set, without a
// password; TLS, loopback and the memory bus are not.
func TestBusWarnings(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		bus  rpcbus.Config
		want []string // a substring of each warning, in order
	}{
		{"loopback", rpcbus.Config{Type: "kafka", Brokers: []string{"127.0.0.1:9092", "localhost:9093"}}, nil},
		{"default brokers", rpcbus.Config{Type: "nats"}, nil},
		{"plain remote", rpcbus.Config{Type: "nats", Brokers: []string{"nats://alice:s3cret@nats.example:4222", "127.0.0.1:4222"}},
			[]string{"plain text to [nats://alice:xxxxx@nats.example:4222]"}},
		{"tls setting", rpcbus.Config{Type: "kafka", Brokers: []string{"kafka.example:9092"}, Settings: map[string]any{"tls_ca_file": "/ca.pem"}}, nil},
		{"tls scheme", rpcbus.Config{Type: "mqtt", Brokers: []string{"mqtts://mqtt.example:8883"}}, nil},
		{"tls false", rpcbus.Config{Type: "redis", Brokers: []string{"redis.example:6379"}, Settings: map[string]any{"tls": false}},
			[]string{"rpc_bus.settings.tls"}},
		{"insecure", rpcbus.Config{Type: "amqp", Brokers: []string{"rabbit.example:5671"}, Settings: map[string]any{"tls_insecure_skip_verify": true}},
			[]string{"tls_insecure_skip_verify is true"}},
		{"embedded on every interface", rpcbus.Config{Type: "embedded", Brokers: []string{"0.0.0.0:9092"}}, []string{"cannot speak TLS"}},
		{"memory", rpcbus.Config{Type: "memory", Brokers: []string{"shared"}}, nil},
	}
	for _, tc := range cases {
		got := vconfig.BusWarnings("rpc_bus", tc.bus)
		if len(got) != len(tc.want) {
			t.Errorf("%s: warnings %q, want %d", tc.name, got, len(tc.want))
			continue
		}
		for i, w := range tc.want {
			if !strings.Contains(got[i], w) || strings.Contains(got[i], "s3cret") {
				t.Errorf("%s: warning %q, want one saying %q (and no password)", tc.name, got[i], w)
			}
		}
	}
}

func TestServerSecurityWarnings(t *testing.T) {
	t.Parallel()
	cfg := vconfig.Config{
		RpcBus: rpcbus.Config{Type: "kafka", Brokers: []string{"127.0.0.1:9092"}},
		Targets: map[string]vconfig.Target{
			"a": {Endpoint: "a:1", Settings: map[string]any{"tls_insecure_skip_verify": true}},
			"b": {Endpoint: "b:1"},
		},
		Dedup: vconfig.DedupConf{Store: "redis", Redis: vconfig.RedisConf{Addr: "redis.example:6379"}},
	}
	got := cfg.SecurityWarnings()
	want := []string{"targets.a.settings.tls_insecure_skip_verify", "dedup.redis: stored replies"}
	if len(got) != len(want) {
		t.Fatalf("warnings %q, want %d", got, len(want))
	}
	for i, w := range want {
		if !strings.Contains(got[i], w) {
			t.Errorf("warning %q, want one about %q", got[i], w)
		}
	}
	cfg.Dedup.Redis.TLSCAFile = "/ca.pem"
	cfg.Targets["a"] = vconfig.Target{Endpoint: "a:1"}
	if got := cfg.SecurityWarnings(); len(got) != 0 {
		t.Errorf("with TLS everywhere: warnings %q", got)
	}
}
