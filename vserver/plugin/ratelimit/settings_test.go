package ratelimit_test

import (
	"testing"

	"github.com/nextpkg/vrpc/vserver/plugin/plugintest"
	"github.com/nextpkg/vrpc/vserver/plugin/ratelimit"
)

// TestSettingsErrors: a bad setting stops the chain's build with an error
// naming the plugin's place in the list and the key.
func TestSettingsErrors(t *testing.T) {
	plugintest.SettingsErrors(t, ratelimit.Name, []plugintest.SettingsCase{
		{Settings: nil, Want: []string{"settings", "no limit"}},
		{Settings: map[string]any{"per_target": map[string]any{"rate": 0}}, Want: []string{"settings.per_target.rate"}},
		{Settings: map[string]any{"per_target": map[string]any{"rat": 5}}, Want: []string{"settings.per_target", `unknown key "rat"`}},
		{Settings: map[string]any{"targets": map[string]any{"demoo": map[string]any{"rate": 5}}}, Want: []string{"settings.targets.demoo", "not a target"}},
		{Settings: map[string]any{"clients": map[string]any{"a": map[string]any{"rate": 5, "burst": -1}}}, Want: []string{"settings.clients.a.burst"}},
	})
}
