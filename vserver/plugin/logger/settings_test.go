package logger_test

import (
	"testing"

	"github.com/nextpkg/vrpc/vserver/plugin/logger"
	"github.com/nextpkg/vrpc/vserver/plugin/plugintest"
)

// TestSettingsErrors: a bad setting stops the chain's build with an error
// naming the plugin's place in the list and the key.
func TestSettingsErrors(t *testing.T) {
	plugintest.SettingsErrors(t, logger.Name, []plugintest.SettingsCase{
		{Settings: map[string]any{"levle": "info"}, Want: []string{`unknown key "levle"`, "level", "sample"}},
		{Settings: map[string]any{"level": "loud"}, Want: []string{"settings.level", "loud"}},
		{Settings: map[string]any{"sample": 1.5}, Want: []string{"settings.sample", "1.5"}},
		{Settings: map[string]any{"sample": "half"}, Want: []string{"settings.sample", "a number"}},
	})
}
