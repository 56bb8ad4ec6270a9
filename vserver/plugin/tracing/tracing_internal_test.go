package tracing

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

// TestIDGenerator: ids are valid and do not repeat.
func TestIDGenerator(t *testing.T) {
	var g idGenerator
	traces := map[trace.TraceID]bool{}
	spans := map[trace.SpanID]bool{}
	for range 10000 {
		tid, sid := g.NewIDs(context.Background())
		sid2 := g.NewSpanID(context.Background(), tid)
		if !tid.IsValid() || !sid.IsValid() || !sid2.IsValid() {
			t.Fatalf("invalid ids %s %s %s", tid, sid, sid2)
		}
		if traces[tid] || spans[sid] || spans[sid2] || sid == sid2 {
			t.Fatalf("an id came twice: %s %s %s", tid, sid, sid2)
		}
		traces[tid], spans[sid], spans[sid2] = true, true, true
	}
}
