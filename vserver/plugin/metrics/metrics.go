package metrics

import (
	"context"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"

	"github.com/nextpkg/vrpc/vserver/plugin"
)

// Name is the plugin's name in the server configuration.
const Name = "metrics"

func init() { plugin.RegisterBuilder(Name, New) }

// defaultBuckets suit calls from a few hundred microseconds to tens of
// seconds, in seconds.
var defaultBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// otherMethod is the method label of calls past max_methods and of calls
// the target did not know (UNIMPLEMENTED), so that callers cannot grow the
// label set without bound.
const otherMethod = "other"

// settings are the plugin's settings (the package doc shows them in YAML).
type settings struct {
	// QueueBuckets and TargetBuckets are the histograms' upper bounds, in
	// seconds.
	QueueBuckets  []float64 `json:"queue_buckets"`
	TargetBuckets []float64 `json:"target_buckets"`
	// MaxMethods bounds the distinct method labels per target; later
	// methods are counted as "other".
	MaxMethods int `json:"max_methods"`
}

// metricsPlugin counts every call that reaches it on the server's
// registry (the package doc lists its metrics).
type metricsPlugin struct {
	calls      *prometheus.CounterVec
	queueWait  *prometheus.HistogramVec
	targetTime *prometheus.HistogramVec
	inFlight   *prometheus.GaugeVec
	maxMethods int

	mu      sync.RWMutex
	methods map[string]map[string]bool // target → methods labelled so far
}

// New builds the metrics plugin from its settings, strictly, and
// registers its metrics on env.Registerer: listed twice in one server, the
// second fails to register.
func New(env plugin.Env, m map[string]any) (plugin.Plugin, error) {
	s := settings{MaxMethods: 200}
	if err := plugin.DecodeSettings(m, &s); err != nil {
		return nil, err
	}
	for _, b := range []struct {
		key string
		v   *[]float64
	}{{"queue_buckets", &s.QueueBuckets}, {"target_buckets", &s.TargetBuckets}} {
		if *b.v == nil {
			*b.v = defaultBuckets
			continue
		}
		for i, x := range *b.v {
			if x <= 0 || i > 0 && x <= (*b.v)[i-1] {
				return nil, fmt.Errorf("settings.%s %v: want positive bounds in seconds, increasing", b.key, *b.v)
			}
		}
	}
	if s.MaxMethods < 1 {
		return nil, fmt.Errorf("settings.max_methods %d: must be at least 1", s.MaxMethods)
	}
	p := &metricsPlugin{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vrpc_server_calls_total",
			Help: "Calls that reached the metrics plugin, by target, full method and gRPC status code of the reply.",
		}, []string{"target", "method", "code"}),
		queueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vrpc_server_queue_wait_seconds",
			Help:    "Time from the caller publishing a request to this server taking it off the bus (clocks of both hosts).",
			Buckets: s.QueueBuckets,
		}, []string{"target"}),
		targetTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vrpc_server_target_duration_seconds",
			Help:    "Time of the gRPC call to the target, for calls that reached it.",
			Buckets: s.TargetBuckets,
		}, []string{"target", "method"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vrpc_server_calls_in_flight",
			Help: "Calls inside the plugin chain at or after the metrics plugin, by target.",
		}, []string{"target"}),
		maxMethods: s.MaxMethods,
		methods:    make(map[string]map[string]bool),
	}
	for _, c := range []prometheus.Collector{p.calls, p.queueWait, p.targetTime, p.inFlight} {
		if err := env.Registerer.Register(c); err != nil {
			return nil, fmt.Errorf("registering its metrics (is the metrics plugin listed twice?): %w", err)
		}
	}
	// Every target's series exist from the start, so that rate() and
	// absent() work before the first call.
	for _, t := range env.Targets {
		p.inFlight.WithLabelValues(t)
		p.queueWait.WithLabelValues(t)
	}
	return p, nil
}

// Wrap implements plugin.Plugin.
func (p *metricsPlugin) Wrap(next plugin.Handler) plugin.Handler {
	return func(ctx context.Context, call *plugin.Call) *plugin.Result {
		inFlight := p.inFlight.WithLabelValues(call.Target)
		inFlight.Inc()
		if call.SentAt.UnixNano() > 0 {
			p.queueWait.WithLabelValues(call.Target).Observe(call.QueueTime().Seconds())
		}
		res := next(ctx, call)
		inFlight.Dec()
		code := res.Status.Code()
		method := p.methodLabel(call.Target, call.Method, code)
		p.calls.WithLabelValues(call.Target, method, code.String()).Inc()
		if res.TargetTime > 0 {
			p.targetTime.WithLabelValues(call.Target, method).Observe(res.TargetTime.Seconds())
		}
		return res
	}
}

// methodLabel is the method label of a call: the method, or "other" for
// an UNIMPLEMENTED call or a method past max_methods of its target.
func (p *metricsPlugin) methodLabel(target, method string, code codes.Code) string {
	if code == codes.Unimplemented || method == "" {
		return otherMethod
	}
	p.mu.RLock()
	known := p.methods[target][method]
	p.mu.RUnlock()
	if known {
		return method
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	seen := p.methods[target]
	if seen[method] {
		return method
	}
	if len(seen) >= p.maxMethods {
		return otherMethod
	}
	if seen == nil {
		seen = make(map[string]bool)
		p.methods[target] = seen
	}
	seen[method] = true
	return method
}
