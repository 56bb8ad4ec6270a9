package vserver_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/rpcbus/bustest"
	"github.com/nextpkg/vrpc/vserver"
)

// TestWarnings: a server with no authentication says so; a server joining
// a request topic under a new name while another group serves it is
// warned that both groups execute every request, and /debug/vrpc shows
// the warnings.
func TestWarnings(t *testing.T) {
	t.Parallel()
	busCfg := startKafka(t)
	addr := startDemo(t, "demo-1")
	first := startServer(t, serverConfig(busCfg, addr))
	if w := first.Warnings(); !slices.ContainsFunc(w, func(s string) bool { return strings.Contains(s, "authenticates no caller") }) ||
		slices.ContainsFunc(w, func(s string) bool { return strings.Contains(s, "also consumed") }) {
		t.Errorf("first server's warnings %q: want the one about authentication, none about other groups", w)
	}

	same := startServer(t, serverConfig(busCfg, addr)) // the same name: one group

	cfg := serverConfig(busCfg, addr)
	cfg.Name = "other-name"
	cfg.Host, cfg.Port = "127.0.0.1", 0
	other := startServer(t, cfg)
	i := -1
	bustest.Eventually(t, "a warning naming group test-server", func() bool {
		i = slices.IndexFunc(other.Warnings(), func(s string) bool { return strings.Contains(s, "also consumed by group test-server") })
		return i >= 0
	})
	for _, s := range []*vserver.Server{first, same} {
		if w := s.Warnings(); slices.ContainsFunc(w, func(s string) bool { return strings.Contains(s, "also consumed") }) {
			t.Errorf("a server of group test-server: warnings %q", w)
		}
	}
	info := other.Debug(testContext(t))
	if !slices.Contains(info.Warnings, other.Warnings()[i]) {
		t.Errorf("/debug/vrpc warnings %q, want the server's", info.Warnings)
	}

	// With the auth plugin, no warning about authentication.
	cfg = serverConfig(busCfg, addr)
	cfg.Name = "authed"
	cfg.Plugins = []vrpc.PluginConf{{Name: "auth", Enabled: true, Settings: map[string]any{
		"clients": map[string]any{"billing": map[string]any{"token": "s3cret-billing", "allow": []any{"*"}}},
	}}}
	authed := startServer(t, cfg)
	if w := authed.Warnings(); slices.ContainsFunc(w, func(s string) bool { return strings.Contains(s, "authenticates no caller") }) {
		t.Errorf("a server with the auth plugin: warnings %q", w)
	}
}
