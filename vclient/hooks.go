package vclient

import (
	"context"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/nextpkg/vrpc/vrpcpb"
)

// TracerName is the instrumentation name of the client's spans.
const TracerName = "github.com/nextpkg/vrpc/vclient"

// WithTracerProvider makes the client start a span (kind client) with tp
// for every call and send that span's context with the request, so that
// the server's spans are its children. Without it the client still sends
// the W3C trace context of the span in the call's context, if any.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(o *options) { o.tp = tp })
}

// observer is the client's side of observability: Prometheus metrics,
// always kept (an atomic add and a histogram observation per call), and
// tracing.
type observer struct {
	tracer trace.Tracer // nil: no spans of its own
	prop   propagation.TraceContext

	calls       *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	timeouts    *prometheus.CounterVec
	lateReplies prometheus.Counter
	// forgedReplies counts replies that did not verify (security on).
	forgedReplies prometheus.Counter
	pending       prometheus.GaugeFunc
	pendingB      prometheus.GaugeFunc
	waiting       *waitingCollector // Waiting (waiting.go)
}

func newObserver(c *Client, tp trace.TracerProvider) *observer {
	labels := prometheus.Labels{"client_id": c.cfg.ClientID}
	o := &observer{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "vrpc_client_calls_total",
			Help:        "Calls made through the client, by target and gRPC status code.",
			ConstLabels: labels,
		}, []string{"target", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "vrpc_client_call_duration_seconds",
			Help:        "Time from a call's start to its reply (or failure): bus, queue, server and target together.",
			ConstLabels: labels,
			Buckets:     []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"target"}),
		timeouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "vrpc_client_timeouts_total",
			Help:        "Calls that reached their deadline before the reply came (DEADLINE_EXCEEDED).",
			ConstLabels: labels,
		}, []string{"target"}),
		lateReplies: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "vrpc_client_orphan_replies_total",
			Help:        "Replies that found no call waiting: it had timed out or been cancelled, or the reply came twice.",
			ConstLabels: labels,
		}),
		forgedReplies: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "vrpc_client_forged_replies_total",
			Help:        "Replies dropped because they did not verify (unsigned, unknown key, bad signature, or a sealed body that did not open); the call waited on for the real one.",
			ConstLabels: labels,
		}),
		pending: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "vrpc_client_pending_calls",
			Help:        "Calls in progress, waiting for the bus to take their request or for their reply (bounded by max_pending); vrpc_client_waiting_calls tells them apart.",
			ConstLabels: labels,
		}, func() float64 { return float64(c.Pending()) }),
		pendingB: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "vrpc_client_pending_bytes",
			Help:        "Request bytes of the calls waiting for their reply (bounded by max_pending_bytes).",
			ConstLabels: labels,
		}, func() float64 { return float64(c.PendingBytes()) }),
	}
	o.waiting = newWaitingCollector(c, labels)
	if tp != nil {
		o.tracer = tp.Tracer(TracerName)
	}
	return o
}

// Collector returns the client's Prometheus metrics, for the caller to
// register:
//
//	prometheus.MustRegister(client.Collector())
//
// vrpc_client_calls_total{target,code}, vrpc_client_call_duration_seconds{target},
// vrpc_client_timeouts_total{target}, vrpc_client_pending_calls,
// vrpc_client_pending_bytes, vrpc_client_orphan_replies_total,
// vrpc_client_waiting_calls{state} and vrpc_client_oldest_waiting_seconds{state}
// (see Waiting), each with a client_id label. Two
// clients with the same client id in one registry collide: wrap one with
// prometheus.WrapRegistererWith.
func (c *Client) Collector() prometheus.Collector { return c.obs }

// Describe implements prometheus.Collector.
func (o *observer) Describe(ch chan<- *prometheus.Desc) {
	o.calls.Describe(ch)
	o.duration.Describe(ch)
	o.timeouts.Describe(ch)
	o.lateReplies.Describe(ch)
	o.forgedReplies.Describe(ch)
	o.pending.Describe(ch)
	o.pendingB.Describe(ch)
	o.waiting.Describe(ch)
}

// Collect implements prometheus.Collector.
func (o *observer) Collect(ch chan<- prometheus.Metric) {
	o.calls.Collect(ch)
	o.duration.Collect(ch)
	o.timeouts.Collect(ch)
	o.lateReplies.Collect(ch)
	o.forgedReplies.Collect(ch)
	o.pending.Collect(ch)
	o.pendingB.Collect(ch)
	o.waiting.Collect(ch)
}

// invoke is carry observed: the client span, the trace context in the
// envelope, and the metrics.
func (c *Client) invoke(ctx context.Context, target, method string, payload []byte, md metadata.MD, req *vrpcpb.Request) (*vrpcpb.Response, error) {
	o := c.obs
	start := time.Now()
	var span trace.Span
	if o.tracer != nil {
		ctx, span = o.tracer.Start(ctx, strings.TrimPrefix(method, "/"), trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String("rpc.system", "grpc"), attribute.String("vrpc.target", target)))
	}
	if trace.SpanContextFromContext(ctx).IsValid() {
		req.TraceContext = make(map[string]string, 2)
		o.prop.Inject(ctx, propagation.MapCarrier(req.TraceContext))
	}
	resp, err := c.carry(ctx, target, method, payload, md, req)
	code := status.Code(err)
	if err == nil {
		code = codes.Code(resp.GetStatus().GetCode())
	}
	o.calls.WithLabelValues(target, code.String()).Inc()
	o.duration.WithLabelValues(target).Observe(time.Since(start).Seconds())
	if code == codes.DeadlineExceeded {
		o.timeouts.WithLabelValues(target).Inc()
	}
	if span != nil {
		if span.IsRecording() {
			span.SetAttributes(attribute.String("vrpc.request_id", req.Id), attribute.Int("rpc.grpc.status_code", int(code)))
			if code != codes.OK {
				msg := resp.GetStatus().GetMessage()
				if err != nil {
					msg = status.Convert(err).Message()
				}
				span.SetStatus(otelcodes.Error, msg)
			}
		}
		span.End()
	}
	return resp, err
}
