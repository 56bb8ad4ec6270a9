package vserver_test

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nextpkg/vrpc/vserver"
)

// callsByClient is a plugin built with the server's environment: it counts
// calls per client id on the server's /metrics, and has start and stop
// hooks (vserver.Lifecycle) for resources it would hold.
type callsByClient struct {
	calls *prometheus.CounterVec
}

func (p *callsByClient) Wrap(next vserver.Handler) vserver.Handler {
	return func(ctx context.Context, call *vserver.Call) *vserver.Result {
		p.calls.WithLabelValues(call.ClientID).Inc()
		return next(ctx, call)
	}
}

func (p *callsByClient) Start(context.Context) error { return nil } // e.g. connect somewhere
func (p *callsByClient) Stop(context.Context) error  { return nil } // e.g. flush and close

// A PluginBuilder gets the server's name, targets, Prometheus registry and
// tracer provider, and may return a Plugin that also implements
// vserver.Lifecycle.
func ExampleRegisterPluginBuilder() {
	vserver.RegisterPluginBuilder("calls-by-client", func(env vserver.PluginEnv, settings map[string]any) (vserver.Plugin, error) {
		var s struct{} // no settings: any key is an error naming it
		if err := vserver.DecodeSettings(settings, &s); err != nil {
			return nil, err
		}
		p := &callsByClient{calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "example_calls_by_client_total", Help: "Calls by client id.",
		}, []string{"client_id"})}
		if err := env.Registerer.Register(p.calls); err != nil {
			return nil, err
		}
		return p, nil
	})
}
