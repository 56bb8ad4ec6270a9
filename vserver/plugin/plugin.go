package plugin

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
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

// QueueTime is the time the call spent on the bus, from SentAt to
// ReceivedAt: zero when the caller sent no SentAt, and never negative
// (the clocks of the caller's and the server's hosts differ a little).
func (c *Call) QueueTime() time.Duration {
	if c.SentAt.UnixNano() <= 0 {
		return 0
	}
	return max(c.ReceivedAt.Sub(c.SentAt), 0)
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

// Wrap implements Plugin.
func (m Middleware) Wrap(next Handler) Handler { return m(next) }

// Plugin is a built plugin: Wrap puts its middleware around next. A Plugin
// that also implements Lifecycle is started with the server and stopped
// after it. Middleware implements Plugin.
type Plugin interface {
	Wrap(next Handler) Handler
}

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

// Env is what a server tells the plugins it builds.
type Env struct {
	// Server is the server's name (its consumer group).
	Server string
	// Targets are the names of the server's targets, sorted.
	Targets []string
	// Registerer is the server's Prometheus registry, served on the admin
	// endpoint's /metrics.
	Registerer prometheus.Registerer
	// TracerProvider is the provider given to the server
	// (vserver.WithTracerProvider), or nil.
	TracerProvider trace.TracerProvider
	// Version is the vRPC release the server runs, for a plugin that
	// reports it (the tracing plugin's service.version); may be empty.
	Version string
	// Logger is the server's logger (vserver.WithLogger, else
	// slog.Default()); nil only in an Env built by hand.
	Logger *slog.Logger
}

var _ Plugin = Middleware(nil)
