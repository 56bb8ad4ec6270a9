package vserver_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/internal/settings"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vserver"
)

// Plugins are registered once per process, as a plugin package's init
// does; RegisterPlugin panics on a second registration (-count=N).
func init() {
	vserver.RegisterPlugin("vserver_test.gate", newGate)
	vserver.RegisterPlugin("vserver_test.tag", newTag)
}

// newGate builds a plugin that refuses calls carrying "deny: yes" and marks
// the others with "x-plugin: seen" for the target.
func newGate(m map[string]any) (vserver.Middleware, error) {
	var s struct{}
	if err := settings.Decode("settings", m, &s); err != nil {
		return nil, err
	}
	return func(next vserver.Handler) vserver.Handler {
		return func(ctx context.Context, call *vserver.Call) *vserver.Result {
			if slices.Contains(call.Metadata.Get("deny"), "yes") {
				return &vserver.Result{Status: status.Newf(codes.PermissionDenied, "gate: client %s is denied", call.ClientID)}
			}
			if call.Metadata == nil {
				call.Metadata = metadata.MD{}
			}
			call.Metadata.Set("x-plugin", "seen")
			return next(ctx, call)
		}
	}, nil
}

// newTag builds a plugin that appends its tag to the call's "x-order"
// metadata on the way in and to the result's "x-order-out" trailer on the
// way out, so a test sees the order plugins run in.
func newTag(m map[string]any) (vserver.Middleware, error) {
	var s struct {
		Tag string `json:"tag"`
	}
	if err := settings.Decode("settings", m, &s); err != nil {
		return nil, err
	}
	return func(next vserver.Handler) vserver.Handler {
		return func(ctx context.Context, call *vserver.Call) *vserver.Result {
			if call.Metadata == nil {
				call.Metadata = metadata.MD{}
			}
			call.Metadata.Append("x-order", s.Tag)
			res := next(ctx, call)
			if res.Trailer == nil {
				res.Trailer = metadata.MD{}
			}
			res.Trailer.Append("x-order-out", s.Tag)
			return res
		}
	}, nil
}

// recorder remembers the incoming metadata of every call that reached the
// target, by request message.
type recorder struct {
	mu   sync.Mutex
	seen map[string][]metadata.MD
}

func (r *recorder) intercept(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	r.mu.Lock()
	r.seen[req.(*demo.Request).GetMessage()] = append(r.seen[req.(*demo.Request).GetMessage()], md.Copy())
	r.mu.Unlock()
	return h(ctx, req)
}

func (r *recorder) calls(msg string) []metadata.MD {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[msg]
}

func tag(t string) vrpc.PluginConf {
	return vrpc.PluginConf{Name: "vserver_test.tag", Enabled: true, Settings: map[string]any{"tag": t}}
}

var gate = vrpc.PluginConf{Name: "vserver_test.gate", Enabled: true}

func TestPlugins(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		plugins []vrpc.PluginConf
		// what the target sees, in order, for an allowed call
		in []string
		// what the caller gets in the x-order-out trailer: the first
		// plugin listed sees the result last
		out []string
		// x-order-out of a denied call: only the plugins listed before
		// the gate ran
		deniedOut []string
	}{
		{
			name: "gate in the middle",
			plugins: []vrpc.PluginConf{
				tag("one"), gate, tag("two"),
				{Name: "vserver_test.tag", Enabled: false, Settings: map[string]any{"tag": "off"}},
				tag("three"),
			},
			in:        []string{"one", "two", "three"},
			out:       []string{"three", "two", "one"},
			deniedOut: []string{"one"},
		},
		{
			name:      "reversed, gate last",
			plugins:   []vrpc.PluginConf{tag("three"), tag("two"), tag("one"), gate},
			in:        []string{"three", "two", "one"},
			out:       []string{"one", "two", "three"},
			deniedOut: []string{"one", "two", "three"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			busCfg := startKafka(t)
			rec := &recorder{seen: map[string][]metadata.MD{}}
			cfg := serverConfig(busCfg, startRecordingDemo(t, "demo-1", rec.intercept))
			cfg.Plugins = tt.plugins
			startServer(t, cfg)
			c := newClient(t, busCfg, "plugin-caller")
			ctx := testContext(t)

			// Allowed: the target sees what the plugins added, in
			// config order.
			resp, err := c.Call(ctx, "demo", "Ping", mustMarshal(t, &demo.Request{Message: "allowed"}), map[string]string{"user-id": "42"})
			if err != nil {
				t.Fatalf("allowed call: %v", err)
			}
			seen := rec.calls("allowed")
			if len(seen) != 1 {
				t.Fatalf("target saw the allowed call %d times, want 1", len(seen))
			}
			if got := seen[0].Get("x-plugin"); !slices.Equal(got, []string{"seen"}) {
				t.Errorf("target saw x-plugin %q, want [seen]", got)
			}
			if got := seen[0].Get("user-id"); !slices.Equal(got, []string{"42"}) {
				t.Errorf("target saw user-id %q, want the caller's [42]", got)
			}
			if got := seen[0].Get("x-order"); !slices.Equal(got, tt.in) {
				t.Errorf("target saw x-order %q, want %q (config order)", got, tt.in)
			}
			if got := resp.Trailer.Get("x-order-out"); !slices.Equal(got, tt.out) {
				t.Errorf("caller got x-order-out %q, want %q", got, tt.out)
			}

			// Denied: PERMISSION_DENIED, and the target never sees it.
			resp, err = c.Call(ctx, "demo", "Ping", mustMarshal(t, &demo.Request{Message: "denied"}), map[string]string{"deny": "yes"})
			if status.Code(err) != codes.PermissionDenied {
				t.Fatalf("denied call: got %v, want PERMISSION_DENIED", err)
			}
			if want := "gate: client plugin-caller is denied"; status.Convert(err).Message() != want {
				t.Errorf("denied call: message %q, want the plugin's %q", status.Convert(err).Message(), want)
			}
			if n := len(rec.calls("denied")); n != 0 {
				t.Errorf("a denied call reached the target %d times", n)
			}
			if resp == nil {
				t.Fatal("denied call: no response to carry the trailer")
			}
			if got := resp.Trailer.Get("x-order-out"); !slices.Equal(got, tt.deniedOut) {
				t.Errorf("denied call: x-order-out %q, want %q", got, tt.deniedOut)
			}
		})
	}
}

// TestPluginSettingsAreStrict: a plugin's bad settings stop start-up with
// an error naming the plugin's place in the list and the key.
func TestPluginSettingsAreStrict(t *testing.T) {
	t.Parallel()
	cfg := serverConfig(rpcbus.Config{Type: "memory"}, "127.0.0.1:1")
	cfg.Plugins = []vrpc.PluginConf{gate, {Name: "vserver_test.tag", Enabled: true, Settings: map[string]any{"tga": "x"}}}
	_, err := vserver.NewServer(cfg)
	if err == nil {
		t.Fatal("NewServer accepted an unknown plugin setting")
	}
	for _, want := range []string{"plugins[1]", "vserver_test.tag", `unknown key "tga"`, "tag"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
