// Package plugintest helps test a vRPC server plugin, built-in or a third
// party's, without a server: the checks every plugin's settings should
// pass.
package plugintest

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nextpkg/vrpc/vserver/plugin"
)

// SettingsCase is a plugin's settings that must be refused, and what the
// error must mention (the key, the bad value, what is accepted).
type SettingsCase struct {
	Settings map[string]any
	Want     []string
}

// SettingsErrors builds a chain for each case with the plugin registered
// as name listed twice, the first entry disabled, and checks that the
// build fails with an error naming the second entry ("plugins[1]
// (name)") and mentioning every Want of the case.
func SettingsErrors(t testing.TB, name string, cases []SettingsCase) {
	t.Helper()
	for _, tc := range cases {
		env := plugin.Env{Server: "test-server", Targets: []string{"demo"}, Registerer: prometheus.NewRegistry()}
		_, _, err := plugin.Chain(env, []plugin.Conf{{Name: name}, {Name: name, Enabled: true, Settings: tc.Settings}}, nil)
		if err == nil {
			t.Errorf("%v: the chain accepted it", tc.Settings)
			continue
		}
		for _, want := range append([]string{"plugins[1]", "(" + name + ")"}, tc.Want...) {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%v: error %q does not mention %q", tc.Settings, err, want)
			}
		}
	}
}
