package metrics_test

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nextpkg/vrpc/vserver/plugin"
	"github.com/nextpkg/vrpc/vserver/plugin/metrics"
)

// TestSettingsErrors: a bad setting stops the chain's build with an error
// naming the plugin's place in the list and the key.
func TestSettingsErrors(t *testing.T) {
	tests := []struct {
		settings map[string]any
		want     []string
	}{
		{map[string]any{"bucket": []any{1}}, []string{`unknown key "bucket"`}},
		{map[string]any{"target_buckets": []any{0.1, 0.05}}, []string{"settings.target_buckets", "increasing"}},
		{map[string]any{"max_methods": 0}, []string{"settings.max_methods"}},
	}
	for _, tt := range tests {
		env := plugin.Env{Server: "test-server", Targets: []string{"demo"}, Registerer: prometheus.NewRegistry()}
		_, _, err := plugin.Chain(env, []plugin.Conf{{Name: metrics.Name}, {Name: metrics.Name, Enabled: true, Settings: tt.settings}}, nil)
		if err == nil {
			t.Errorf("%v: the chain accepted it", tt.settings)
			continue
		}
		for _, want := range append([]string{"plugins[1]", "(" + metrics.Name + ")"}, tt.want...) {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%v: error %q does not mention %q", tt.settings, err, want)
			}
		}
	}
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
