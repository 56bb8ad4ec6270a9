package stamp

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/nextpkg/vrpc/vserver/plugin"
)

// Name is the plugin's name in the server configuration.
const Name = "stamp"

// StampedByTrailer is the trailer the caller gets: the server's name.
const StampedByTrailer = "x-stamped-by"

func init() { plugin.RegisterBuilder(Name, New) }

// settings are the plugin's settings (the package doc shows them in YAML).
type settings struct {
	// Headers are set on every call to the target.
	Headers map[string]string `json:"headers"`
	// ClientHeader carries the caller's client id to the target; empty
	// leaves it out. Default x-caller-id.
	ClientHeader string `json:"client_header"`
}

// stampPlugin is the built plugin: a plugin.Plugin with plugin.Lifecycle
// hooks.
type stampPlugin struct {
	s      settings
	server string
	calls  atomic.Int64
	since  time.Time
}

// New builds the plugin from its settings, strictly: an unknown key or a
// value of the wrong type is an error naming the key.
func New(env plugin.Env, m map[string]any) (plugin.Plugin, error) {
	s := settings{ClientHeader: "x-caller-id"}
	if err := plugin.DecodeSettings(m, &s); err != nil {
		return nil, err
	}
	for k := range s.Headers {
		if k == "" || k != strings.ToLower(k) || strings.HasPrefix(k, "grpc-") || strings.HasPrefix(k, ":") {
			return nil, fmt.Errorf("settings.headers.%s: want a lower-case metadata key not starting with grpc- or ':'", k)
		}
	}
	return &stampPlugin{s: s, server: env.Server}, nil
}

// Wrap implements plugin.Plugin.
func (p *stampPlugin) Wrap(next plugin.Handler) plugin.Handler {
	return func(ctx context.Context, call *plugin.Call) *plugin.Result {
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

// Start implements plugin.Lifecycle.
func (p *stampPlugin) Start(context.Context) error {
	p.since = time.Now()
	return nil
}

// Stop implements plugin.Lifecycle: it reports what the plugin did.
func (p *stampPlugin) Stop(context.Context) error {
	slog.Debug("stamp plugin stopped", "server", p.server, "calls", p.calls.Load(), "since", p.since)
	return nil
}

var _ plugin.Lifecycle = (*stampPlugin)(nil)
