package vserver_test

import (
	"slices"
	"testing"

	"github.com/nextpkg/vrpc/vserver"
	_ "github.com/nextpkg/vrpc/vserver/plugin/tracing" // plugins: tracing
)

// TestBuiltinPlugins: every server has the built-in plugins without an
// import of their packages (their settings are tested in their packages,
// vserver/plugin/...).
func TestBuiltinPlugins(t *testing.T) {
	t.Parallel()
	have := vserver.Plugins()
	for _, name := range []string{"logger", "metrics", "tracing", "auth", "ratelimit"} {
		if !slices.Contains(have, name) {
			t.Errorf("plugin %q is not registered (have: %q)", name, have)
		}
	}
}
