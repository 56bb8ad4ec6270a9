package plugin_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/metadata"

	"github.com/nextpkg/vrpc/vserver/plugin"
	_ "github.com/nextpkg/vrpc/vserver/plugin/logger"
	_ "github.com/nextpkg/vrpc/vserver/plugin/metrics"
	_ "github.com/nextpkg/vrpc/vserver/plugin/tracing"
)

// BenchmarkChainOverhead is the CPU cost the plugins add to one call,
// without the bus or the target: the chain around a forward that returns
// at once. Compare with a call's whole cost in vserver's
// BenchmarkPluginChain.
func BenchmarkChainOverhead(b *testing.B) {
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewJSONHandler(io.Discard, nil)))
	b.Cleanup(func() { slog.SetDefault(old) })
	for _, tc := range []struct {
		name    string
		plugins []plugin.Conf
	}{
		{"none", nil},
		{"logger", []plugin.Conf{{Name: "logger", Enabled: true}}},
		{"metrics", []plugin.Conf{{Name: "metrics", Enabled: true}}},
		{"tracing1pct", []plugin.Conf{{Name: "tracing", Enabled: true, Settings: map[string]any{"sample": 0.01}}}},
		{"full", []plugin.Conf{
			{Name: "tracing", Enabled: true, Settings: map[string]any{"sample": 0.01}},
			{Name: "logger", Enabled: true},
			{Name: "metrics", Enabled: true},
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			env := plugin.Env{Server: "bench", Targets: []string{"demo"}, Registerer: prometheus.NewRegistry()}
			forward := func(context.Context, *plugin.Call) *plugin.Result {
				return &plugin.Result{Payload: []byte("ok"), TargetTime: 100 * time.Microsecond}
			}
			h, built, err := plugin.Chain(env, tc.plugins, forward)
			if err != nil {
				b.Fatal(err)
			}
			started, err := plugin.StartAll(context.Background(), built)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = plugin.StopAll(context.Background(), started) })
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				now := time.Now()
				h(ctx, &plugin.Call{
					ID: "bench-1", ClientID: "bench", Target: "demo", Method: "/demo.Demo/Ping",
					Metadata: metadata.MD{"user-id": {"7"}}, SentAt: now.Add(-time.Millisecond), ReceivedAt: now,
				})
			}
		})
	}
}
