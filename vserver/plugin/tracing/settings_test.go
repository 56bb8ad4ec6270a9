package tracing_test

import (
	"testing"

	"github.com/nextpkg/vrpc/vserver/plugin/plugintest"
	"github.com/nextpkg/vrpc/vserver/plugin/tracing"
)

// TestSettingsErrors: a bad setting stops the chain's build with an error
// naming the plugin's place in the list and the key.
func TestSettingsErrors(t *testing.T) {
	plugintest.SettingsErrors(t, tracing.Name, []plugintest.SettingsCase{
		{Settings: map[string]any{"sample": 2}, Want: []string{"settings.sample"}},
		{Settings: map[string]any{"endpiont": "x:4317"}, Want: []string{`unknown key "endpiont"`, "endpoint"}},
		{Settings: map[string]any{"insecure": "yes"}, Want: []string{"settings.insecure", "true or false"}},
	})
}
