package auth_test

import (
	"testing"

	"github.com/nextpkg/vrpc/vserver/plugin/auth"
	"github.com/nextpkg/vrpc/vserver/plugin/plugintest"
)

// TestSettingsErrors: a bad setting stops the chain's build with an error
// naming the plugin's place in the list and the key.
func TestSettingsErrors(t *testing.T) {
	plugintest.SettingsErrors(t, auth.Name, []plugintest.SettingsCase{
		{Settings: nil, Want: []string{"settings.clients", "none"}},
		{Settings: map[string]any{"clients": map[string]any{"billing": map[string]any{"tokn": "x"}}}, Want: []string{"settings.clients.billing", `unknown key "tokn"`}},
		{Settings: map[string]any{"clients": map[string]any{"billing": map[string]any{"allow": []any{"demo"}}}}, Want: []string{"settings.clients.billing.token"}},
		{Settings: map[string]any{"clients": map[string]any{"billing": map[string]any{"token": "t", "allow": []any{"demo/Ping"}}}}, Want: []string{"settings.clients.billing.allow[0]", "demo/Ping"}},
		{Settings: map[string]any{"clients": "billing"}, Want: []string{"settings.clients", "a map"}},
	})
}
