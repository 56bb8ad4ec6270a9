package auth_test

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nextpkg/vrpc/vserver/plugin"
	"github.com/nextpkg/vrpc/vserver/plugin/auth"
)

// TestSettingsErrors: a bad setting stops the chain's build with an error
// naming the plugin's place in the list and the key.
func TestSettingsErrors(t *testing.T) {
	tests := []struct {
		settings map[string]any
		want     []string
	}{
		{nil, []string{"settings.clients", "none"}},
		{map[string]any{"clients": map[string]any{"billing": map[string]any{"tokn": "x"}}}, []string{"settings.clients.billing", `unknown key "tokn"`}},
		{map[string]any{"clients": map[string]any{"billing": map[string]any{"allow": []any{"demo"}}}}, []string{"settings.clients.billing.token"}},
		{map[string]any{"clients": map[string]any{"billing": map[string]any{"token": "t", "allow": []any{"demo/Ping"}}}}, []string{"settings.clients.billing.allow[0]", "demo/Ping"}},
		{map[string]any{"clients": "billing"}, []string{"settings.clients", "a map"}},
	}
	for _, tt := range tests {
		env := plugin.Env{Server: "test-server", Targets: []string{"demo"}, Registerer: prometheus.NewRegistry()}
		_, _, err := plugin.Chain(env, []plugin.Conf{{Name: auth.Name}, {Name: auth.Name, Enabled: true, Settings: tt.settings}}, nil)
		if err == nil {
			t.Errorf("%v: the chain accepted it", tt.settings)
			continue
		}
		for _, want := range append([]string{"plugins[1]", "(" + auth.Name + ")"}, tt.want...) {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%v: error %q does not mention %q", tt.settings, err, want)
			}
		}
	}
}
