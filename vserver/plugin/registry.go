package plugin

import (
	"sort"
	"sync"

	"github.com/nextpkg/vrpc/internal/settings"
)

// Factory builds a plugin's middleware from its settings. It should decode
// them strictly (DecodeSettings: an unknown key is an error naming it). A
// plugin that needs the server's metrics registry or a start/stop hook
// registers a Builder instead.
type Factory func(settings map[string]any) (Middleware, error)

// Builder builds a plugin from the server's environment and the plugin's
// settings. It should decode the settings strictly (DecodeSettings).
type Builder func(env Env, settings map[string]any) (Plugin, error)

var (
	mu       sync.RWMutex
	builders = map[string]Builder{}
)

// Register makes a plugin available under name in the plugins list of the
// server configuration. Call it from init; it panics if name is taken.
func Register(name string, f Factory) {
	RegisterBuilder(name, func(_ Env, settings map[string]any) (Plugin, error) {
		mw, err := f(settings)
		if err != nil {
			return nil, err // not a nil Middleware in a non-nil Plugin
		}
		return mw, nil
	})
}

// RegisterBuilder is Register for plugins built with a Builder. Call it
// from init; it panics if name is taken.
func RegisterBuilder(name string, b Builder) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := builders[name]; dup {
		panic("vrpc plugin: Register called twice for " + name)
	}
	builders[name] = b
}

// lookup returns the builder registered under name.
func lookup(name string) (Builder, bool) {
	mu.RLock()
	defer mu.RUnlock()
	b, ok := builders[name]
	return b, ok
}

// Names lists the registered plugin names, sorted.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	names := make([]string, 0, len(builders))
	for n := range builders {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// DecodeSettings fills into, a pointer to a struct whose fields carry json
// tags, from a plugin's settings, strictly: a key the struct does not have
// or a value of the wrong type is an error naming the key ("settings.leve:
// unknown key ..."). Keys absent from settings leave their fields as they
// are, so set defaults first.
func DecodeSettings(settings map[string]any, into any) error {
	return DecodeSettingsAt("settings", settings, into)
}

// DecodeSettingsAt is DecodeSettings for a map found inside the settings,
// such as one entry of a map of clients: key is its place, which errors
// name ("settings.clients.billing.tokn: unknown key ...").
func DecodeSettingsAt(key string, m map[string]any, into any) error {
	return settings.Decode(key, m, into)
}
