package vserver_test

import (
	"context"
	"encoding/hex"
	"net"
	"slices"
	"sync"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/vclient"
	"github.com/nextpkg/vrpc/vserver"
	"github.com/nextpkg/vrpc/vserver/plugin/tracing"
)

// TestTracing follows one call from the caller's span over the bus and the
// server to the target: every span has the caller's trace id, the server's
// spans are children of the client's, and the target gets the server
// span's context in its traceparent header.
func TestTracing(t *testing.T) {
	t.Parallel()
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	busCfg := startKafka(t)
	rec := &recorder{seen: map[string][]metadata.MD{}}
	cfg := serverConfig(busCfg, startRecordingDemo(t, "demo-1", rec.intercept))
	cfg.Plugins = []vrpc.PluginConf{{Name: "tracing", Enabled: true}}
	srv, err := vserver.NewServer(cfg, vserver.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Start() }()
	t.Cleanup(srv.Stop)
	<-srv.Ready()

	c, err := vclient.New(vclient.Config{ClientID: "traced-caller", RpcBus: busCfg}, vclient.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })

	// The caller's own span, as an instrumented application has.
	ctx, root := tp.Tracer("app").Start(testContext(t), "checkout")
	if _, err := c.Call(ctx, "demo", "Ping", mustMarshal(t, &demo.Request{Message: "traced"}), nil); err != nil {
		t.Fatal(err)
	}
	_, err = c.Call(ctx, "demo", "Ping", mustMarshal(t, &demo.Request{}), nil)
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("empty message: %v", err)
	}
	root.End()
	traceID := root.SpanContext().TraceID()

	byName := map[string][]tracetest.SpanStub{}
	for _, s := range spans.GetSpans() {
		if s.SpanContext.TraceID() != traceID {
			t.Errorf("span %q has trace %s, want the caller's %s", s.Name, s.SpanContext.TraceID(), traceID)
		}
		byName[s.Name] = append(byName[s.Name], s)
	}
	// Per call: the client span (vclient), the bus hop and the server
	// span (vserver), all named for the method.
	clientSpans, serverSpans, queueSpans := byName["Ping"], byName["demo.Demo/Ping"], byName["vrpc queue demo"]
	if len(clientSpans) != 2 || len(serverSpans) != 2 || len(queueSpans) != 2 || len(byName["checkout"]) != 1 {
		t.Fatalf("spans by name: %v", names(byName))
	}
	for i := range 2 {
		cs, ss, qs := clientSpans[i], serverSpans[i], queueSpans[i]
		if cs.Parent.SpanID() != root.SpanContext().SpanID() || cs.SpanKind != trace.SpanKindClient {
			t.Errorf("client span: parent %s kind %s, want the caller's span and client", cs.Parent.SpanID(), cs.SpanKind)
		}
		if ss.Parent.SpanID() != cs.SpanContext.SpanID() || !ss.Parent.IsRemote() || ss.SpanKind != trace.SpanKindServer {
			t.Errorf("server span: parent %s (remote %v) kind %s, want the client span %s over the bus",
				ss.Parent.SpanID(), ss.Parent.IsRemote(), ss.SpanKind, cs.SpanContext.SpanID())
		}
		if qs.Parent.SpanID() != cs.SpanContext.SpanID() || qs.EndTime.Before(qs.StartTime) {
			t.Errorf("queue span: parent %s, %v to %v", qs.Parent.SpanID(), qs.StartTime, qs.EndTime)
		}
	}
	// The failed call's spans say so.
	if serverSpans[1].Status.Code.String() != "Error" || clientSpans[1].Status.Code.String() != "Error" {
		t.Errorf("failed call's spans have status %v and %v, want Error", clientSpans[1].Status, serverSpans[1].Status)
	}

	// The target got the server span's context.
	seen := rec.calls("traced")
	if len(seen) != 1 {
		t.Fatalf("target saw the call %d times", len(seen))
	}
	tp0 := seen[0].Get("traceparent")
	want := "00-" + traceID.String() + "-" + serverSpans[0].SpanContext.SpanID().String() + "-01"
	if !slices.Equal(tp0, []string{want}) {
		t.Errorf("target got traceparent %q, want %q", tp0, want)
	}
}

// TestTracingFromContext: a client without a tracer provider still sends
// the trace context of the span in the call's context, and a server
// building its own provider (sample 1, no exporter) passes a child context
// on to the target.
func TestTracingFromContext(t *testing.T) {
	t.Parallel()
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	busCfg := startKafka(t)
	rec := &recorder{seen: map[string][]metadata.MD{}}
	cfg := serverConfig(busCfg, startRecordingDemo(t, "demo-1", rec.intercept))
	cfg.Plugins = []vrpc.PluginConf{{Name: "tracing", Enabled: true, Settings: map[string]any{"sample": 1, "service_name": "edge"}}}
	startServer(t, cfg)
	c := newClient(t, busCfg, "ctx-caller")

	ctx, span := tp.Tracer("app").Start(testContext(t), "job")
	if _, err := c.Call(ctx, "demo", "Ping", mustMarshal(t, &demo.Request{Message: "ctx"}), nil); err != nil {
		t.Fatal(err)
	}
	span.End()
	seen := rec.calls("ctx")
	if len(seen) != 1 {
		t.Fatalf("target saw the call %d times", len(seen))
	}
	sc, err := parseTraceparent(seen[0].Get("traceparent"))
	if err != nil {
		t.Fatal(err)
	}
	if sc.TraceID() != span.SpanContext().TraceID() {
		t.Errorf("target's trace %s, want the caller's %s", sc.TraceID(), span.SpanContext().TraceID())
	}
	if sc.SpanID() == span.SpanContext().SpanID() {
		t.Error("target's parent is the caller's span, not the server's")
	}
}

func parseTraceparent(v []string) (trace.SpanContext, error) {
	if len(v) != 1 {
		return trace.SpanContext{}, status.Errorf(codes.InvalidArgument, "traceparent %q", v)
	}
	var tid trace.TraceID
	var sid trace.SpanID
	// 00-<32 hex>-<16 hex>-<2 hex>
	s := v[0]
	if len(s) != 55 {
		return trace.SpanContext{}, status.Errorf(codes.InvalidArgument, "traceparent %q", s)
	}
	var err error
	if tid, err = trace.TraceIDFromHex(s[3:35]); err != nil {
		return trace.SpanContext{}, err
	}
	if sid, err = trace.SpanIDFromHex(s[36:52]); err != nil {
		return trace.SpanContext{}, err
	}
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid}), nil
}

func names(m map[string][]tracetest.SpanStub) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = len(v)
	}
	return out
}

// collector is an OTLP/gRPC trace collector that keeps the trace ids of
// the spans it receives.
type collector struct {
	coltracepb.UnimplementedTraceServiceServer
	mu     sync.Mutex
	traces map[string]int // trace id (hex) → spans
	names  map[string]bool
}

func (c *collector) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		for _, a := range rs.GetResource().GetAttributes() {
			if a.Key == "service.name" {
				c.names[a.GetValue().GetStringValue()] = true
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				c.traces[hex.EncodeToString(s.TraceId)]++
			}
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// TestTracingOTLPExport: with an endpoint, the plugin exports its spans
// over OTLP/gRPC; Stop flushes them, so they have arrived once the server
// has stopped.
func TestTracingOTLPExport(t *testing.T) {
	t.Parallel()
	col := &collector{traces: map[string]int{}, names: map[string]bool{}}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(gs, col)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)

	busCfg := startKafka(t)
	cfg := serverConfig(busCfg, startDemo(t, "demo-1"))
	cfg.Plugins = []vrpc.PluginConf{{Name: "tracing", Enabled: true, Settings: map[string]any{
		"endpoint": lis.Addr().String(), "sample": 1, "service_name": "vrpc-otlp-test",
	}}}
	srv, err := vserver.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Start() }()
	<-srv.Ready()
	c := newClient(t, busCfg, "otlp-caller")
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("app").Start(testContext(t), "job")
	if _, err := c.Call(ctx, "demo", "Ping", mustMarshal(t, &demo.Request{Message: "x"}), nil); err != nil {
		t.Fatal(err)
	}
	span.End()
	srv.Stop()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	// The queue span and the server span, in the caller's trace.
	if n := col.traces[span.SpanContext().TraceID().String()]; n != 2 {
		t.Errorf("collector got %d spans of the caller's trace (all: %v), want 2", n, col.traces)
	}
	if !col.names["vrpc-otlp-test"] {
		t.Errorf("collector saw services %v, want vrpc-otlp-test", col.names)
	}
}

// TestTracerNameMatches: vserver.TracerName, which vserver defines without
// linking the tracing plugin, is the plugin's instrumentation name.
func TestTracerNameMatches(t *testing.T) {
	if vserver.TracerName != tracing.TracerName {
		t.Fatalf("vserver.TracerName %q, tracing.TracerName %q", vserver.TracerName, tracing.TracerName)
	}
}
