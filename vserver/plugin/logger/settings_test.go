package logger_test

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nextpkg/vrpc/vserver/plugin"
	"github.com/nextpkg/vrpc/vserver/plugin/logger"
)

// TestSettingsErrors: a bad setting stops the chain's build with an error
// naming the plugin's place in the list and the key.
func TestSettingsErrors(t *testing.T) {
	tests := []struct {
		settings map[string]any
		want     []string
	}{
		{map[string]any{"levle": "info"}, []string{`unknown key "levle"`, "level", "sample"}},
		{map[string]any{"level": "loud"}, []string{"settings.level", "loud"}},
		{map[string]any{"sample": 1.5}, []string{"settings.sample", "1.5"}},
		{map[string]any{"sample": "half"}, []string{"settings.sample", "a number"}},
	}
	for _, tt := range tests {
		env := plugin.Env{Server: "test-server", Targets: []string{"demo"}, Registerer: prometheus.NewRegistry()}
		_, _, err := plugin.Chain(env, []plugin.Conf{{Name: logger.Name}, {Name: logger.Name, Enabled: true, Settings: tt.settings}}, nil)
		if err == nil {
			t.Errorf("%v: the chain accepted it", tt.settings)
			continue
		}
		for _, want := range append([]string{"plugins[1]", "(" + logger.Name + ")"}, tt.want...) {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%v: error %q does not mention %q", tt.settings, err, want)
			}
		}
	}
}
