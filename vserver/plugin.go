package vserver

import (
	"context"
	"fmt"
	"log/slog"

	"go.opentelemetry.io/otel/trace"

	"github.com/nextpkg/vrpc/vconfig"
	"github.com/nextpkg/vrpc/vserver/plugin"
	"github.com/nextpkg/vrpc/vserver/plugin/auth"

	// These built-in plugins register in their init: every server has
	// them. The tracing plugin, with the OpenTelemetry SDK and its OTLP
	// exporter, is linked by importing vserver/plugin/tracing.
	_ "github.com/nextpkg/vrpc/vserver/plugin/logger"
	_ "github.com/nextpkg/vrpc/vserver/plugin/metrics"
	_ "github.com/nextpkg/vrpc/vserver/plugin/ratelimit"
)

// The plugin API lives in package vserver/plugin and the built-in plugins
// in the packages below it; this package imports four of the five (all but
// tracing), so that every server has them. The names below are that API under the names it had
// when it lived here, and keep working.

// Call is one request as plugins see it, on its way to the target
// (plugin.Call).
type Call = plugin.Call

// Result is the outcome of a Call (plugin.Result).
type Result = plugin.Result

// Handler serves a Call (plugin.Handler).
type Handler = plugin.Handler

// Middleware wraps a Handler (plugin.Middleware).
type Middleware = plugin.Middleware

// Plugin is a built plugin (plugin.Plugin).
type Plugin = plugin.Plugin

// Lifecycle is implemented by plugins with start and stop hooks
// (plugin.Lifecycle).
type Lifecycle = plugin.Lifecycle

// PluginEnv is what a server tells the plugins it builds (plugin.Env).
type PluginEnv = plugin.Env

// PluginFactory builds a plugin's middleware from its settings
// (plugin.Factory).
type PluginFactory = plugin.Factory

// PluginBuilder builds a plugin from the server's environment and its
// settings (plugin.Builder).
type PluginBuilder = plugin.Builder

// RegisterPlugin makes a plugin available under name in the plugins list
// of the server configuration (plugin.Register). Call it from init; it
// panics if name is taken.
func RegisterPlugin(name string, f PluginFactory) { plugin.Register(name, f) }

// RegisterPluginBuilder is RegisterPlugin for plugins built with a
// PluginBuilder (plugin.RegisterBuilder).
func RegisterPluginBuilder(name string, b PluginBuilder) { plugin.RegisterBuilder(name, b) }

// DecodeSettings fills into from a plugin's settings, strictly
// (plugin.DecodeSettings).
func DecodeSettings(settings map[string]any, into any) error {
	return plugin.DecodeSettings(settings, into)
}

// Plugins lists the registered plugin names, sorted (plugin.Names).
func Plugins() []string { return plugin.Names() }

// TracerName is the instrumentation name of the spans the tracing plugin
// makes (tracing.TracerName, which a test checks is the same).
const TracerName = "github.com/nextpkg/vrpc"

// DefaultTokenHeader is the request metadata key that carries a client's
// token to the auth plugin (auth.DefaultTokenHeader).
const DefaultTokenHeader = auth.DefaultTokenHeader

// WithTracerProvider makes the tracing plugin make its spans with tp (an
// application's own provider, or one with an in-memory exporter in tests)
// instead of building a provider from its settings; tp's sampler and
// exporters then apply, and the endpoint and sample settings do not.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(s *Server) { s.tracerProvider = tp })
}

// builtPlugin is one enabled entry of the plugins list.
type builtPlugin = plugin.Built

// chain builds the enabled plugins around h, the first listed outermost.
func chain(env PluginEnv, confs []vconfig.PluginConf, h Handler) (Handler, []builtPlugin, error) {
	pcs := make([]plugin.Conf, len(confs))
	for i, c := range confs {
		pcs[i] = plugin.Conf{Name: c.Name, Enabled: c.Enabled, Settings: c.Settings}
	}
	return plugin.Chain(env, pcs, h)
}

// startPlugins runs the Start hooks in config order. When one fails, the
// ones started are stopped again.
func startPlugins(ctx context.Context, built []builtPlugin) ([]builtPlugin, error) {
	return plugin.StartAll(ctx, built)
}

// stopPlugins runs the Stop hooks of started plugins in reverse order.
func stopPlugins(ctx context.Context, log *slog.Logger, started []builtPlugin) {
	if err := plugin.StopAll(ctx, started); err != nil {
		log.Error(fmt.Sprintf("vrpc server: %v", err))
	}
}
