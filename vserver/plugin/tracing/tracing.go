package tracing

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/nextpkg/vrpc/vserver/plugin"
)

// Name is the plugin's name in the server configuration.
const Name = "tracing"

func init() { plugin.RegisterBuilder(Name, New) }

// TracerName is the instrumentation name of the spans the plugin makes.
const TracerName = "github.com/nextpkg/vrpc"

// settings are the plugin's settings (the package doc shows them in YAML).
type settings struct {
	// Endpoint is the OTLP/gRPC collector's host:port. Empty: spans are
	// made and their context passed to the targets, but not exported.
	Endpoint string `json:"endpoint"`
	// Insecure talks to the collector in plaintext; false uses TLS with
	// the system's roots.
	Insecure bool `json:"insecure"`
	// Headers are sent with every export, such as an API key.
	Headers map[string]string `json:"headers"`
	// Sample is the share of traces a server starts that it samples, 0 to
	// 1. A call whose caller's trace is sampled (or not) follows the
	// caller's decision.
	Sample float64 `json:"sample"`
	// ServiceName is the service.name of the spans; default the server's
	// name.
	ServiceName string `json:"service_name"`
}

// tracingPlugin continues the caller's trace (the W3C trace context in the
// envelope) with a span for the time on the bus and a server span around
// the rest of the chain and the call to the target, and passes the server
// span's context to the target in the traceparent header.
type tracingPlugin struct {
	s      settings
	own    *sdktrace.TracerProvider // nil when the server gave a provider
	tracer trace.Tracer
	prop   propagation.TraceContext
}

// New builds the tracing plugin from its settings, strictly. It makes its
// spans with env.TracerProvider when the server has one, else with a
// provider of its own, which Start connects to the endpoint and Stop
// flushes.
func New(env plugin.Env, m map[string]any) (plugin.Plugin, error) {
	s := settings{Insecure: true, Sample: 1, ServiceName: env.Server}
	if err := plugin.DecodeSettings(m, &s); err != nil {
		return nil, err
	}
	if !(s.Sample >= 0 && s.Sample <= 1) {
		return nil, fmt.Errorf("settings.sample %v: want a share from 0 to 1, such as 0.01", s.Sample)
	}
	p := &tracingPlugin{s: s}
	tp := env.TracerProvider
	if tp == nil {
		p.own = sdktrace.NewTracerProvider(
			sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(s.Sample))),
			sdktrace.WithIDGenerator(idGenerator{}),
			sdktrace.WithResource(resource.NewSchemaless(
				attribute.String("service.name", s.ServiceName),
				attribute.String("service.version", env.Version),
			)),
		)
		tp = p.own
	} else if _, set := m["endpoint"]; set || m["sample"] != nil {
		if log := env.Logger; log != nil {
			log.Info(fmt.Sprintf("vrpc server %s: tracing uses the TracerProvider given to NewServer; its settings endpoint and sample are not used", env.Server))
		}
	}
	p.tracer = tp.Tracer(TracerName, trace.WithInstrumentationVersion(env.Version))
	return p, nil
}

// Start connects the OTLP exporter, when an endpoint is set.
func (p *tracingPlugin) Start(ctx context.Context) error {
	if p.own == nil || p.s.Endpoint == "" {
		return nil
	}
	opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(p.s.Endpoint)}
	if p.s.Insecure {
		opts = append(opts, otlptracegrpc.WithInsecure())
	}
	if len(p.s.Headers) > 0 {
		opts = append(opts, otlptracegrpc.WithHeaders(p.s.Headers))
	}
	exp, err := otlptracegrpc.New(ctx, opts...)
	if err != nil {
		return fmt.Errorf("settings.endpoint %q: OTLP exporter: %w", p.s.Endpoint, err)
	}
	p.own.RegisterSpanProcessor(sdktrace.NewBatchSpanProcessor(exp))
	return nil
}

// Stop exports the spans still buffered and closes the exporter.
func (p *tracingPlugin) Stop(ctx context.Context) error {
	if p.own == nil {
		return nil
	}
	return p.own.Shutdown(ctx)
}

// Wrap implements plugin.Plugin.
func (p *tracingPlugin) Wrap(next plugin.Handler) plugin.Handler {
	return func(ctx context.Context, call *plugin.Call) *plugin.Result {
		if len(call.TraceContext) > 0 {
			ctx = p.prop.Extract(ctx, propagation.MapCarrier(call.TraceContext))
		}
		method := strings.TrimPrefix(call.Method, "/")
		service, short, _ := strings.Cut(method, "/")
		queue := call.QueueTime()
		if trace.SpanContextFromContext(ctx).IsRemote() && queue > 0 {
			// The hop over the bus, as a sibling of the server span: from
			// the caller's publish to this server's take-off.
			_, span := p.tracer.Start(ctx, "vrpc queue "+call.Target,
				trace.WithSpanKind(trace.SpanKindConsumer),
				trace.WithTimestamp(call.ReceivedAt.Add(-queue)),
				trace.WithAttributes(attribute.String("vrpc.target", call.Target)))
			span.End(trace.WithTimestamp(call.ReceivedAt))
		}
		ctx, span := p.tracer.Start(ctx, method, trace.WithSpanKind(trace.SpanKindServer))
		if span.IsRecording() {
			span.SetAttributes(
				attribute.String("rpc.system", "grpc"),
				attribute.String("rpc.service", service),
				attribute.String("rpc.method", short),
				attribute.String("vrpc.target", call.Target),
				attribute.String("vrpc.client_id", call.ClientID),
				attribute.String("vrpc.request_id", call.ID),
				attribute.Float64("vrpc.queue_seconds", queue.Seconds()),
			)
		}
		// The target continues the trace from the server span.
		if call.Metadata == nil {
			call.Metadata = metadata.MD{}
		}
		p.prop.Inject(ctx, mdCarrier(call.Metadata))
		res := next(ctx, call)
		if span.IsRecording() {
			code := res.Status.Code()
			span.SetAttributes(attribute.Int("rpc.grpc.status_code", int(code)))
			if code != codes.OK {
				span.SetStatus(otelcodes.Error, res.Status.Message())
			}
		}
		span.End()
		return res
	}
}

// idGenerator makes trace and span ids from math/rand/v2's generator,
// which is seeded from the system's and needs no lock: the SDK's default
// serializes every span of every call on one mutex, though with a sampling
// ratio most spans are never recorded.
type idGenerator struct{}

func (idGenerator) NewIDs(context.Context) (trace.TraceID, trace.SpanID) {
	var tid trace.TraceID
	for !tid.IsValid() {
		binary.BigEndian.PutUint64(tid[:8], rand.Uint64())
		binary.BigEndian.PutUint64(tid[8:], rand.Uint64())
	}
	return tid, newSpanID()
}

func (idGenerator) NewSpanID(context.Context, trace.TraceID) trace.SpanID { return newSpanID() }

func newSpanID() trace.SpanID {
	var sid trace.SpanID
	for !sid.IsValid() {
		binary.BigEndian.PutUint64(sid[:], rand.Uint64())
	}
	return sid
}

// mdCarrier lets a propagator write gRPC metadata.
type mdCarrier metadata.MD

func (c mdCarrier) Get(key string) string {
	if v := metadata.MD(c).Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

func (c mdCarrier) Set(key, value string) { metadata.MD(c).Set(key, value) }

func (c mdCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

var _ plugin.Lifecycle = (*tracingPlugin)(nil)
