package metrics_test

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nextpkg/vrpc/vserver/plugin"
	"github.com/nextpkg/vrpc/vserver/plugin/metrics"
	"github.com/nextpkg/vrpc/vserver/plugin/plugintest"
)

// TestSettingsErrors: a bad setting stops the chain's build with an error
// naming the plugin's place in the list and the key.
func TestSettingsErrors(t *testing.T) {
	plugintest.SettingsErrors(t, metrics.Name, []plugintest.SettingsCase{
		{Settings: map[string]any{"bucket": []any{1}}, Want: []string{`unknown key "bucket"`}},
		{Settings: map[string]any{"target_buckets": []any{0.1, 0.05}}, Want: []string{"settings.target_buckets", "increasing"}},
		{Settings: map[string]any{"max_methods": 0}, Want: []string{"settings.max_methods"}},
	})
}

// TestListedTwice: the metrics plugin listed twice is refused, as its
// metrics would collide on the server's registry.
func TestListedTwice(t *testing.T) {
	env := plugin.Env{Server: "test-server", Targets: []string{"demo"}, Registerer: prometheus.NewRegistry()}
	_, _, err := plugin.Chain(env, []plugin.Conf{{Name: metrics.Name, Enabled: true}, {Name: metrics.Name, Enabled: true}}, nil)
	if err == nil || !strings.Contains(err.Error(), "plugins[1] (metrics)") {
		t.Errorf("Chain: %v, want an error naming plugins[1] (metrics)", err)
	}
}
