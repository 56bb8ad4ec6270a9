package vserver

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vconfig"
)

// groupsTimeout bounds the question to the bus about the other groups of
// the request topics at start.
const groupsTimeout = 30 * time.Second

// authPlugin is the name of the plugin that authenticates callers.
const authPlugin = "auth"

// authConfigured reports whether the server checks who calls it: a
// security section with keys per client, or the auth plugin (tokens).
func authConfigured(cfg *vconfig.Config) bool {
	return cfg.Security.Enabled() ||
		slices.ContainsFunc(cfg.Plugins, func(p vconfig.PluginConf) bool { return p.Enabled && p.Name == authPlugin })
}

// Warnings are the risks the server found in its configuration and on the
// bus when it started, one sentence each, as it logged them (once per
// process each): plain text off this machine, certificates not verified,
// no authentication of callers, and another consumer group serving its
// request topics (this one found shortly after Start, once the bus could
// tell). Empty before Start.
func (s *Server) Warnings() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.warnings)
}

// configWarnings are the risks in the server's configuration.
func (s *Server) configWarnings() []string {
	out := s.cfg.SecurityWarnings()
	if !authConfigured(&s.cfg) && s.cfg.RpcBus.Type != "memory" {
		out = append(out, fmt.Sprintf("server %s authenticates no caller: whoever can publish to %v can call every target, "+
			"under any client id; give it a security section (signed calls; see README, Security)", s.cfg.Name, s.Topics()))
	}
	return out
}

// groupWarnings ask the bus, if it can tell (rpcbus.GroupLister), which
// other consumer groups consume the request topics: each group gets every
// request, so a target served under two names executes each call twice.
func (s *Server) groupWarnings() []string {
	gl, ok := s.bus.(rpcbus.GroupLister)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(s.calls, groupsTimeout)
	defer cancel()
	var out []string
	for _, topic := range s.Topics() {
		groups, err := gl.ListGroups(ctx, topic)
		if err != nil {
			return out // the bus cannot tell now; the server serves anyway
		}
		groups = slices.DeleteFunc(groups, func(g string) bool { return g == s.cfg.Name })
		if len(groups) > 0 {
			out = append(out, fmt.Sprintf("request topic %s is also consumed by group %s: every group gets every request, "+
				"so each call is executed by server %s and by %s; give the servers of one target the same name",
				topic, strings.Join(groups, ", "), s.cfg.Name, strings.Join(groups, " and ")))
		}
	}
	return out
}

// warn logs the server's warnings, once per process each, and keeps them
// for Warnings and /debug/vrpc.
func (s *Server) warn(warnings []string) {
	vconfig.WarnOnce(s.log, warnings...)
	s.mu.Lock()
	s.warnings = append(s.warnings, warnings...)
	s.mu.Unlock()
}
