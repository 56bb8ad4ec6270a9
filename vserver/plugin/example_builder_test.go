package plugin_test

import (
	"context"
	"fmt"
	"log"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nextpkg/vrpc/vserver/plugin"
)

// A plugin that needs the server's environment registers a Builder.
func init() { plugin.RegisterBuilder("calls-by-client", newCallsByClient) }

// callsByClient counts calls per client id on the server's registry (its
// /metrics), and has start and stop hooks (plugin.Lifecycle) for the
// resources it would hold.
type callsByClient struct {
	calls *prometheus.CounterVec
}

// newCallsByClient gets the server's name, targets, Prometheus registry
// and tracer provider in env.
func newCallsByClient(env plugin.Env, settings map[string]any) (plugin.Plugin, error) {
	var s struct{} // no settings: any key is an error naming it
	if err := plugin.DecodeSettings(settings, &s); err != nil {
		return nil, err
	}
	p := &callsByClient{calls: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "example_calls_by_client_total", Help: "Calls by client id.",
	}, []string{"client_id"})}
	if err := env.Registerer.Register(p.calls); err != nil {
		return nil, err
	}
	return p, nil
}

// Wrap implements plugin.Plugin.
func (p *callsByClient) Wrap(next plugin.Handler) plugin.Handler {
	return func(ctx context.Context, call *plugin.Call) *plugin.Result {
		p.calls.WithLabelValues(call.ClientID).Inc()
		return next(ctx, call)
	}
}

// Start implements plugin.Lifecycle: it would connect somewhere.
func (p *callsByClient) Start(context.Context) error { return nil }

// Stop implements plugin.Lifecycle: it would flush and close.
func (p *callsByClient) Stop(context.Context) error { return nil }

// A server passes its registry in Env and runs the Lifecycle hooks with
// StartAll before the first call and StopAll after the last.
func ExampleRegisterBuilder() {
	registry := prometheus.NewRegistry()
	env := plugin.Env{Server: "edge", Targets: []string{"demo"}, Registerer: registry}
	target := func(context.Context, *plugin.Call) *plugin.Result { return &plugin.Result{} }
	h, built, err := plugin.Chain(env, []plugin.Conf{{Name: "calls-by-client", Enabled: true}}, target)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	started, err := plugin.StartAll(ctx, built)
	if err != nil {
		log.Fatal(err)
	}
	for _, id := range []string{"billing", "ops", "billing"} {
		h(ctx, &plugin.Call{ClientID: id, Target: "demo"})
	}
	if err := plugin.StopAll(ctx, started); err != nil {
		log.Fatal(err)
	}

	families, err := registry.Gather()
	if err != nil {
		log.Fatal(err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			fmt.Println(f.GetName(), m.GetLabel()[0].GetValue(), m.GetCounter().GetValue())
		}
	}
	// Output:
	// example_calls_by_client_total billing 2
	// example_calls_by_client_total ops 1
}
