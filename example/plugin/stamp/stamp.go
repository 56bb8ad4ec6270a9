// Package stamp is a vRPC server plugin written as a third party would
// write one: it uses only the public API of package vserver, and a server
// gets it by importing the package (see example/plugin for such a server).
//
//	plugins:
//	  - name: stamp
//	    settings:
//	      headers: {x-via: vrpc}       # set on every call to the target
//	      client_header: x-caller-id   # the caller's client id, for the target
//
// The target sees the headers and the caller's client id (overwriting
// whatever the caller sent under those keys, so a caller cannot pose as
// another); the caller gets an x-stamped-by trailer naming the server.
package stamp

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/nextpkg/vrpc/vserver"
)

// Name is the plugin's name in the server configuration.
const Name = "stamp"

// StampedByTrailer is the trailer the caller gets: the server's name.
const StampedByTrailer = "x-stamped-by"

func init() { vserver.RegisterPluginBuilder(Name, New) }

// Settings are the plugin's settings.
type Settings struct {
	// Headers are set on every call to the target.
	Headers map[string]string `json:"headers"`
	// ClientHeader carries the caller's client id to the target; empty
	// leaves it out.
	ClientHeader string `json:"client_header"`
}

// Plugin is the built plugin. It implements vserver.Plugin and
// vserver.Lifecycle.
type Plugin struct {
	s      Settings
	server string
	calls  atomic.Int64
	since  time.Time
}

// New builds the plugin from its settings, strictly: an unknown key or a
// value of the wrong type is an error naming the key.
func New(env vserver.PluginEnv, settings map[string]any) (vserver.Plugin, error) {
	s := Settings{ClientHeader: "x-caller-id"}
	if err := vserver.DecodeSettings(settings, &s); err != nil {
		return nil, err
	}
	for k := range s.Headers {
		if k == "" || k != strings.ToLower(k) || strings.HasPrefix(k, "grpc-") || strings.HasPrefix(k, ":") {
			return nil, fmt.Errorf("settings.headers.%s: want a lower-case metadata key not starting with grpc- or ':'", k)
		}
	}
	return &Plugin{s: s, server: env.Server}, nil
}

// Wrap implements vserver.Plugin.
func (p *Plugin) Wrap(next vserver.Handler) vserver.Handler {
	return func(ctx context.Context, call *vserver.Call) *vserver.Result {
		p.calls.Add(1)
		if call.Metadata == nil {
			call.Metadata = metadata.MD{}
		}
		for k, v := range p.s.Headers {
			call.Metadata.Set(k, v)
		}
		if p.s.ClientHeader != "" {
			call.Metadata.Set(p.s.ClientHeader, call.ClientID)
		}
		res := next(ctx, call)
		if res.Trailer == nil {
			res.Trailer = metadata.MD{}
		}
		res.Trailer.Set(StampedByTrailer, p.server)
		return res
	}
}

// Start implements vserver.Lifecycle.
func (p *Plugin) Start(context.Context) error {
	p.since = time.Now()
	return nil
}

// Stop implements vserver.Lifecycle: it reports what the plugin did.
func (p *Plugin) Stop(context.Context) error {
	slog.Debug("stamp plugin stopped", "server", p.server, "calls", p.calls.Load(), "since", p.since)
	return nil
}

// Calls is the number of calls the plugin has stamped.
func (p *Plugin) Calls() int64 { return p.calls.Load() }
