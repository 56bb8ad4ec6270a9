package tracing_test

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nextpkg/vrpc/vserver/plugin"
	"github.com/nextpkg/vrpc/vserver/plugin/tracing"
)

// TestSettingsErrors: a bad setting stops the chain's build with an error
// naming the plugin's place in the list and the key.
func TestSettingsErrors(t *testing.T) {
	tests := []struct {
		settings map[string]any
		want     []string
	}{
		{map[string]any{"sample": 2}, []string{"settings.sample"}},
		{map[string]any{"endpiont": "x:4317"}, []string{`unknown key "endpiont"`, "endpoint"}},
		{map[string]any{"insecure": "yes"}, []string{"settings.insecure", "true or false"}},
	}
	for _, tt := range tests {
		env := plugin.Env{Server: "test-server", Targets: []string{"demo"}, Registerer: prometheus.NewRegistry()}
		_, _, err := plugin.Chain(env, []plugin.Conf{{Name: tracing.Name}, {Name: tracing.Name, Enabled: true, Settings: tt.settings}}, nil)
		if err == nil {
			t.Errorf("%v: the chain accepted it", tt.settings)
			continue
		}
		for _, want := range append([]string{"plugins[1]", "(" + tracing.Name + ")"}, tt.want...) {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%v: error %q does not mention %q", tt.settings, err, want)
			}
		}
	}
}
