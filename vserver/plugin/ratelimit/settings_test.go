package ratelimit_test

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nextpkg/vrpc/vserver/plugin"
	"github.com/nextpkg/vrpc/vserver/plugin/ratelimit"
)

// TestSettingsErrors: a bad setting stops the chain's build with an error
// naming the plugin's place in the list and the key.
func TestSettingsErrors(t *testing.T) {
	tests := []struct {
		settings map[string]any
		want     []string
	}{
		{nil, []string{"settings", "no limit"}},
		{map[string]any{"per_target": map[string]any{"rate": 0}}, []string{"settings.per_target.rate"}},
		{map[string]any{"per_target": map[string]any{"rat": 5}}, []string{"settings.per_target", `unknown key "rat"`}},
		{map[string]any{"targets": map[string]any{"demoo": map[string]any{"rate": 5}}}, []string{"settings.targets.demoo", "not a target"}},
		{map[string]any{"clients": map[string]any{"a": map[string]any{"rate": 5, "burst": -1}}}, []string{"settings.clients.a.burst"}},
	}
	for _, tt := range tests {
		env := plugin.Env{Server: "test-server", Targets: []string{"demo"}, Registerer: prometheus.NewRegistry()}
		_, _, err := plugin.Chain(env, []plugin.Conf{{Name: ratelimit.Name}, {Name: ratelimit.Name, Enabled: true, Settings: tt.settings}}, nil)
		if err == nil {
			t.Errorf("%v: the chain accepted it", tt.settings)
			continue
		}
		for _, want := range append([]string{"plugins[1]", "(" + ratelimit.Name + ")"}, tt.want...) {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%v: error %q does not mention %q", tt.settings, err, want)
			}
		}
	}
}
