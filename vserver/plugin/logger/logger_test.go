package logger

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nextpkg/vrpc/vserver/plugin"
)

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// lines returns the logged lines that mention id.
func (s *syncBuffer) lines(id string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, l := range strings.Split(s.b.String(), "\n") {
		if strings.Contains(l, "id="+id+" ") {
			out = append(out, l)
		}
	}
	return out
}

// TestLogger checks the logger plugin's lines, levels and sampling.
func TestLogger(t *testing.T) {
	t.Parallel()
	buf := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(buf, nil))
	New := func(m map[string]any) (plugin.Middleware, error) { return build(log, m) }

	now := time.Now()
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:  trace.SpanID{0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
	})
	traced := trace.ContextWithSpanContext(context.Background(), sc)
	ok := func(context.Context, *plugin.Call) *plugin.Result {
		return &plugin.Result{TargetTime: 1500 * time.Microsecond}
	}
	failed := func(context.Context, *plugin.Call) *plugin.Result {
		return &plugin.Result{Status: status.New(codes.InvalidArgument, `message "must" not be empty`)}
	}
	tests := []struct {
		name     string
		settings map[string]any
		ctx      context.Context
		h        plugin.Handler
		want     []string // substrings of the one line; nil: no line
	}{
		{"info ok", nil, context.Background(), ok, []string{
			`"level":"INFO"`, "client=caller-1 target=demo method=/demo.Demo/Ping code=OK queue=2ms target_time=1.5ms"}},
		{"info ok traced", nil, traced, ok, []string{"code=OK", "trace=4bf92f3577b34da6a3ce929d0e0e4736"}},
		{"info failed", nil, context.Background(), failed, []string{
			`"level":"ERROR"`, `code=InvalidArgument`, `message=\"message \\\"must\\\" not be empty\"`}},
		{"error level ok", map[string]any{"level": "error"}, context.Background(), ok, nil},
		{"error level failed", map[string]any{"level": "error"}, context.Background(), failed, []string{"code=InvalidArgument"}},
		{"sample 0 ok", map[string]any{"sample": 0}, context.Background(), ok, nil},
		{"sample 0 failed", map[string]any{"sample": 0}, context.Background(), failed, []string{"code=InvalidArgument"}},
	}
	for i, tt := range tests {
		mw, err := New(tt.settings)
		if err != nil {
			t.Fatal(err)
		}
		id := "log-" + string(rune('a'+i))
		mw(tt.h)(tt.ctx, &plugin.Call{ID: id, ClientID: "caller-1", Target: "demo", Method: "/demo.Demo/Ping",
			SentAt: now.Add(-2 * time.Millisecond), ReceivedAt: now})
		lines := buf.lines(id)
		if tt.want == nil {
			if len(lines) != 0 {
				t.Errorf("%s: logged %q, want nothing", tt.name, lines)
			}
			continue
		}
		if len(lines) != 1 {
			t.Errorf("%s: logged %d lines, want 1: %q", tt.name, len(lines), lines)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(lines[0], w) {
				t.Errorf("%s: line %s does not contain %s", tt.name, lines[0], w)
			}
		}
	}

	// sample 0.5 logs some successful calls, not all (1000 tries: the
	// odds of all or none are 2^-1000).
	mw, err := New(map[string]any{"sample": 0.5})
	if err != nil {
		t.Fatal(err)
	}
	h := mw(ok)
	for range 1000 {
		h(context.Background(), &plugin.Call{ID: "sampled", SentAt: now, ReceivedAt: now})
	}
	if n := len(buf.lines("sampled")); n == 0 || n == 1000 {
		t.Errorf("sample 0.5 logged %d of 1000 calls", n)
	}

	// A sender's 2 MiB id and client id are logged clipped, not whole.
	mw, err = New(nil)
	if err != nil {
		t.Fatal(err)
	}
	huge := "huge-id-" + strings.Repeat("x", 2<<20)
	mw(ok)(context.Background(), &plugin.Call{ID: huge, ClientID: huge, Target: "demo", Method: "/demo.Demo/Ping", SentAt: now, ReceivedAt: now})
	var lines []string
	buf.mu.Lock()
	for _, l := range strings.Split(buf.b.String(), "\n") {
		if strings.Contains(l, "id=huge-id-") {
			lines = append(lines, l)
		}
	}
	buf.mu.Unlock()
	if len(lines) != 1 {
		t.Fatalf("logged %d lines for the huge id, want 1", len(lines))
	}
	if len(lines[0]) > 1024 || !strings.Contains(lines[0], "clipped") {
		t.Errorf("the line of a call with a 2 MiB id is %d bytes: %.300q", len(lines[0]), lines[0])
	}
}
