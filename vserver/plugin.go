package vserver

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/zeromicro/go-zero/core/logx"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/nextpkg/vrpc"
	vsettings "github.com/nextpkg/vrpc/internal/settings"
)

// Call is one request as plugins see it, on its way to the target.
type Call struct {
	// ID is the request id, unique across clients.
	ID string
	// ClientID is the caller's configured identity.
	ClientID string
	// Target is the target name; Method the full gRPC method once resolved.
	Target string
	Method string
	// Payload is the request message as the caller encoded it.
	Payload []byte
	// Metadata becomes the call's incoming metadata at the target; plugins
	// may change it.
	Metadata metadata.MD
	// Deadline is the caller's deadline.
	Deadline time.Time
	// SentAt is when the caller published the request, ReceivedAt when this
	// server took it off the bus: their difference is the time in the queue.
	SentAt     time.Time
	ReceivedAt time.Time
	// TraceContext is the caller's W3C trace context ("traceparent",
	// "tracestate"); nil when the caller is not traced. The tracing
	// plugin continues the caller's trace from it.
	TraceContext map[string]string
}

// Result is the outcome of a Call.
type Result struct {
	// Payload is the reply message; nil unless Status is OK.
	Payload []byte
	// Header and Trailer are the target's response metadata.
	Header  metadata.MD
	Trailer metadata.MD
	// Status is the call's gRPC status; nil means OK.
	Status *status.Status
	// TargetTime is how long the target took.
	TargetTime time.Duration
}

// Handler serves a Call.
type Handler func(ctx context.Context, call *Call) *Result

// Middleware wraps a Handler: it may look at or change the call, reject it
// by returning a Result with a Status without calling next, and observe the
// result.
type Middleware func(next Handler) Handler

// PluginFactory builds a plugin's middleware from its settings. It should
// decode them strictly (DecodeSettings: an unknown key is an error naming
// it). A plugin that needs the server's metrics registry or a start/stop
// hook registers a PluginBuilder instead.
type PluginFactory func(settings map[string]any) (Middleware, error)

// Plugin is a built plugin: Wrap puts its middleware around next. A Plugin
// that also implements Lifecycle is started with the server and stopped
// after it. Middleware implements Plugin.
type Plugin interface {
	Wrap(next Handler) Handler
}

// Wrap implements Plugin.
func (m Middleware) Wrap(next Handler) Handler { return m(next) }

// Lifecycle is implemented by plugins that hold resources (connections,
// goroutines, files). The server calls Start for each such plugin, in
// config order, before it consumes its first request; a Start error stops
// start-up (the plugins already started are stopped). Stop is called in the
// reverse order once the calls in flight have finished or were given up,
// with a context bounding how long it may take. A builder should leave
// acquiring resources to Start, because a server that is never started is
// never stopped either.
type Lifecycle interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// PluginEnv is what a server tells the plugins it builds.
type PluginEnv struct {
	// Server is the server's name (its consumer group).
	Server string
	// Targets are the names of the server's targets, sorted.
	Targets []string
	// Registerer is the server's Prometheus registry, served on the admin
	// endpoint's /metrics.
	Registerer prometheus.Registerer
	// TracerProvider is the provider given with WithTracerProvider, or nil.
	TracerProvider trace.TracerProvider
}

// PluginBuilder builds a plugin from the server's environment and the
// plugin's settings. It should decode the settings strictly
// (DecodeSettings).
type PluginBuilder func(env PluginEnv, settings map[string]any) (Plugin, error)

var (
	pluginsMu sync.RWMutex
	plugins   = map[string]PluginBuilder{}
)

// RegisterPlugin makes a plugin available under name in the plugins list of
// the server configuration. Call it from init; it panics if name is taken.
func RegisterPlugin(name string, f PluginFactory) {
	RegisterPluginBuilder(name, func(_ PluginEnv, settings map[string]any) (Plugin, error) {
		mw, err := f(settings)
		if err != nil {
			return nil, err // not a nil Middleware in a non-nil Plugin
		}
		return mw, nil
	})
}

// RegisterPluginBuilder is RegisterPlugin for plugins built with a
// PluginBuilder. Call it from init; it panics if name is taken.
func RegisterPluginBuilder(name string, b PluginBuilder) {
	pluginsMu.Lock()
	defer pluginsMu.Unlock()
	if _, dup := plugins[name]; dup {
		panic("vserver: RegisterPlugin called twice for " + name)
	}
	plugins[name] = b
}

// DecodeSettings fills into, a pointer to a struct whose fields carry json
// tags, from a plugin's settings, strictly: a key the struct does not have
// or a value of the wrong type is an error naming the key ("settings.leve:
// unknown key ..."). Keys absent from settings leave their fields as they
// are, so set defaults first.
func DecodeSettings(settings map[string]any, into any) error {
	return vsettings.Decode("settings", settings, into)
}

// Plugins lists the registered plugin names, sorted.
func Plugins() []string {
	pluginsMu.RLock()
	defer pluginsMu.RUnlock()
	names := make([]string, 0, len(plugins))
	for n := range plugins {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// builtPlugin is one enabled entry of the plugins list.
type builtPlugin struct {
	index int
	name  string
	p     Plugin
}

// chain builds the enabled plugins around h, the first listed outermost.
func chain(env PluginEnv, confs []vrpc.PluginConf, h Handler) (Handler, []builtPlugin, error) {
	built := make([]builtPlugin, 0, len(confs))
	for i, pc := range confs {
		if !pc.Enabled {
			continue
		}
		pluginsMu.RLock()
		b, ok := plugins[pc.Name]
		pluginsMu.RUnlock()
		if !ok {
			return nil, nil, fmt.Errorf("plugins[%d].name %q is not a registered plugin (have: %s); remove it or set enabled: false",
				i, pc.Name, strings.Join(Plugins(), ", "))
		}
		p, err := b(env, pc.Settings)
		if err != nil {
			return nil, nil, fmt.Errorf("plugins[%d] (%s): %w", i, pc.Name, err)
		}
		built = append(built, builtPlugin{index: i, name: pc.Name, p: p})
	}
	for i := len(built) - 1; i >= 0; i-- {
		h = built[i].p.Wrap(h)
	}
	return h, built, nil
}

// startPlugins runs the Start hooks in config order. When one fails, the
// ones started are stopped again.
func startPlugins(ctx context.Context, built []builtPlugin) (started []builtPlugin, err error) {
	for _, bp := range built {
		lc, ok := bp.p.(Lifecycle)
		if !ok {
			continue
		}
		if err := lc.Start(ctx); err != nil {
			stopPlugins(ctx, started)
			return nil, fmt.Errorf("plugins[%d] (%s): start: %w", bp.index, bp.name, err)
		}
		started = append(started, bp)
	}
	return started, nil
}

// stopPlugins runs the Stop hooks of started plugins in reverse order.
func stopPlugins(ctx context.Context, started []builtPlugin) {
	for i := len(started) - 1; i >= 0; i-- {
		bp := started[i]
		if err := bp.p.(Lifecycle).Stop(ctx); err != nil {
			logx.Errorf("vrpc server: plugins[%d] (%s): stop: %v", bp.index, bp.name, err)
		}
	}
}

// The built-in plugins that hold resources or need the server.
var (
	_ Plugin    = Middleware(nil)
	_ Plugin    = (*metricsPlugin)(nil)
	_ Plugin    = (*rateLimit)(nil)
	_ Lifecycle = (*tracingPlugin)(nil)
)
