package vserver

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/nextpkg/vrpc"
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
// decode them strictly (an unknown key is an error naming it).
type PluginFactory func(settings map[string]any) (Middleware, error)

var (
	pluginsMu sync.RWMutex
	plugins   = map[string]PluginFactory{}
)

// RegisterPlugin makes a plugin available under name in the plugins list of
// the server configuration. Call it from init; it panics if name is taken.
func RegisterPlugin(name string, f PluginFactory) {
	pluginsMu.Lock()
	defer pluginsMu.Unlock()
	if _, dup := plugins[name]; dup {
		panic("vserver: RegisterPlugin called twice for " + name)
	}
	plugins[name] = f
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

// chain builds the enabled plugins around h, the first listed outermost.
func chain(confs []vrpc.PluginConf, h Handler) (Handler, error) {
	mws := make([]Middleware, 0, len(confs))
	for i, pc := range confs {
		if !pc.Enabled {
			continue
		}
		pluginsMu.RLock()
		f, ok := plugins[pc.Name]
		pluginsMu.RUnlock()
		if !ok {
			return nil, fmt.Errorf("plugins[%d].name %q is not a registered plugin (have: %s); remove it or set enabled: false",
				i, pc.Name, strings.Join(Plugins(), ", "))
		}
		mw, err := f(pc.Settings)
		if err != nil {
			return nil, fmt.Errorf("plugins[%d] (%s): %w", i, pc.Name, err)
		}
		mws = append(mws, mw)
	}
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h, nil
}
