package plugin

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Conf is one entry of a server's plugins list: the name a plugin was
// registered under, whether it is enabled, and its settings.
type Conf struct {
	Name     string
	Enabled  bool
	Settings map[string]any
}

// Built is one enabled entry of a plugins list, built.
type Built struct {
	// Index is the entry's place in the plugins list, for messages.
	Index int
	// Name is the name the plugin is registered under.
	Name string
	// Plugin is what its Builder returned.
	Plugin Plugin
}

// optional are the built-in plugins a server links only when its program
// imports their package, for the error when a configuration names one the
// program has not: vserver links the others.
var optional = map[string]string{"tracing": "github.com/nextpkg/vrpc/vserver/plugin/tracing"}

// Chain builds the enabled plugins of confs and wraps them around h, the
// first listed outermost: it sees the call first and the result last. It
// returns the wrapped handler and the plugins built, in config order, for
// StartAll. An error names the entry, as plugins[i] (name).
func Chain(env Env, confs []Conf, h Handler) (Handler, []Built, error) {
	built := make([]Built, 0, len(confs))
	for i, pc := range confs {
		if !pc.Enabled {
			continue
		}
		b, ok := lookup(pc.Name)
		if !ok {
			if pkg, ok := optional[pc.Name]; ok {
				return nil, nil, fmt.Errorf("plugins[%d].name %q: this program does not link that plugin: import _ %q (the vrpc command does), or remove it",
					i, pc.Name, pkg)
			}
			return nil, nil, fmt.Errorf("plugins[%d].name %q is not a registered plugin (have: %s); remove it or set enabled: false",
				i, pc.Name, strings.Join(Names(), ", "))
		}
		p, err := b(env, pc.Settings)
		if err != nil {
			return nil, nil, fmt.Errorf("plugins[%d] (%s): %w", i, pc.Name, err)
		}
		built = append(built, Built{Index: i, Name: pc.Name, Plugin: p})
	}
	for i := len(built) - 1; i >= 0; i-- {
		h = built[i].Plugin.Wrap(h)
	}
	return h, built, nil
}

// StartAll runs the Start hooks of the built plugins that implement
// Lifecycle, in config order, and returns those started. When one fails,
// the ones already started are stopped again and the error names the
// failing entry (and any plugin whose Stop then failed too).
func StartAll(ctx context.Context, built []Built) (started []Built, err error) {
	for _, bp := range built {
		lc, ok := bp.Plugin.(Lifecycle)
		if !ok {
			continue
		}
		if err := lc.Start(ctx); err != nil {
			err = fmt.Errorf("plugins[%d] (%s): start: %w", bp.Index, bp.Name, err)
			return nil, errors.Join(err, StopAll(ctx, started))
		}
		started = append(started, bp)
	}
	return started, nil
}

// StopAll runs the Stop hooks of the plugins StartAll started, in reverse
// order, each whatever the others return, and joins their errors.
func StopAll(ctx context.Context, started []Built) error {
	var errs []error
	for i := len(started) - 1; i >= 0; i-- {
		bp := started[i]
		if err := bp.Plugin.(Lifecycle).Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("plugins[%d] (%s): stop: %w", bp.Index, bp.Name, err))
		}
	}
	return errors.Join(errs...)
}
