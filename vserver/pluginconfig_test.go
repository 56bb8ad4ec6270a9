package vserver_test

import (
	"strings"
	"testing"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vserver"
)

// TestBuiltinPluginConfigErrors: a bad setting of a built-in plugin stops
// NewServer with an error naming the plugin's place in the list and the
// key.
func TestBuiltinPluginConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		plugin   string
		settings map[string]any
		want     []string
	}{
		{"logger", map[string]any{"levle": "info"}, []string{`unknown key "levle"`, "level", "sample"}},
		{"logger", map[string]any{"level": "loud"}, []string{"settings.level", "loud"}},
		{"logger", map[string]any{"sample": 1.5}, []string{"settings.sample", "1.5"}},
		{"logger", map[string]any{"sample": "half"}, []string{"settings.sample", "a number"}},
		{"metrics", map[string]any{"bucket": []any{1}}, []string{`unknown key "bucket"`}},
		{"metrics", map[string]any{"target_buckets": []any{0.1, 0.05}}, []string{"settings.target_buckets", "increasing"}},
		{"metrics", map[string]any{"max_methods": 0}, []string{"settings.max_methods"}},
		{"tracing", map[string]any{"sample": 2}, []string{"settings.sample"}},
		{"tracing", map[string]any{"endpiont": "x:4317"}, []string{`unknown key "endpiont"`, "endpoint"}},
		{"tracing", map[string]any{"insecure": "yes"}, []string{"settings.insecure", "true or false"}},
		{"auth", nil, []string{"settings.clients", "none"}},
		{"auth", map[string]any{"clients": map[string]any{"billing": map[string]any{"tokn": "x"}}}, []string{"settings.clients.billing", `unknown key "tokn"`}},
		{"auth", map[string]any{"clients": map[string]any{"billing": map[string]any{"allow": []any{"demo"}}}}, []string{"settings.clients.billing.token"}},
		{"auth", map[string]any{"clients": map[string]any{"billing": map[string]any{"token": "t", "allow": []any{"demo/Ping"}}}}, []string{"settings.clients.billing.allow[0]", "demo/Ping"}},
		{"auth", map[string]any{"clients": "billing"}, []string{"settings.clients", "a map"}},
		{"ratelimit", nil, []string{"settings", "no limit"}},
		{"ratelimit", map[string]any{"per_target": map[string]any{"rate": 0}}, []string{"settings.per_target.rate"}},
		{"ratelimit", map[string]any{"per_target": map[string]any{"rat": 5}}, []string{"settings.per_target", `unknown key "rat"`}},
		{"ratelimit", map[string]any{"targets": map[string]any{"demoo": map[string]any{"rate": 5}}}, []string{"settings.targets.demoo", "not a target"}},
		{"ratelimit", map[string]any{"clients": map[string]any{"a": map[string]any{"rate": 5, "burst": -1}}}, []string{"settings.clients.a.burst"}},
	}
	for _, tt := range tests {
		cfg := serverConfig(rpcbus.Config{Type: "memory"}, "127.0.0.1:1")
		cfg.Plugins = []vrpc.PluginConf{{Name: "logger", Enabled: true}, {Name: tt.plugin, Enabled: true, Settings: tt.settings}}
		_, err := vserver.NewServer(cfg)
		if err == nil {
			t.Errorf("%s %v: NewServer accepted it", tt.plugin, tt.settings)
			continue
		}
		for _, want := range append([]string{"plugins[1]", "(" + tt.plugin + ")"}, tt.want...) {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s %v: error %q does not mention %q", tt.plugin, tt.settings, err, want)
			}
		}
	}
}

// TestMetricsPluginTwice: the metrics plugin listed twice is refused, as
// its metrics would collide.
func TestMetricsPluginTwice(t *testing.T) {
	t.Parallel()
	cfg := serverConfig(rpcbus.Config{Type: "memory"}, "127.0.0.1:1")
	cfg.Plugins = []vrpc.PluginConf{{Name: "metrics", Enabled: true}, {Name: "metrics", Enabled: true}}
	if _, err := vserver.NewServer(cfg); err == nil || !strings.Contains(err.Error(), "plugins[1] (metrics)") {
		t.Errorf("NewServer: %v, want an error naming plugins[1] (metrics)", err)
	}
}
