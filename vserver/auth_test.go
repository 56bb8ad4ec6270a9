package vserver_test

import (
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/codec"
	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vrpcpb"
	"github.com/nextpkg/vrpc/vserver"
)

// TestAuth: a call must carry its client id's token and be on that
// client's allow-list; refused calls never reach the target, and the token
// never does either.
func TestAuth(t *testing.T) {
	t.Parallel()
	busCfg := startKafka(t)
	rec := &recorder{seen: map[string][]metadata.MD{}}
	cfg := serverConfig(busCfg, startRecordingDemo(t, "demo-1", rec.intercept))
	cfg.Plugins = []vrpc.PluginConf{{Name: "auth", Enabled: true, Settings: map[string]any{
		"clients": map[string]any{
			"billing": map[string]any{"token": "s3cret-billing", "allow": []any{"demo/demo.Demo/Ping"}},
			"ops":     map[string]any{"token": "s3cret-ops", "allow": []any{"demo/other.Service/*"}},
			"admin":   map[string]any{"token": "s3cret-admin", "allow": []any{"*"}},
		},
	}}}
	startServer(t, cfg)
	ctx := testContext(t)
	tok := func(v string) map[string]string {
		return map[string]string{vserver.DefaultTokenHeader: v, "user-id": "7"}
	}

	tests := []struct {
		client string
		md     map[string]string
		method string
		want   codes.Code
	}{
		{"billing", tok("s3cret-billing"), "Ping", codes.OK},
		{"billing", tok("s3cret-billing"), "/demo.Demo/Ping", codes.OK},
		{"admin", tok("s3cret-admin"), "Ping", codes.OK},
		{"billing", nil, "Ping", codes.Unauthenticated},                    // no token
		{"billing", tok("s3cret-billinG"), "Ping", codes.Unauthenticated},  // wrong token
		{"billing", tok("s3cret-ops"), "Ping", codes.Unauthenticated},      // another client's token
		{"stranger", tok("s3cret-billing"), "Ping", codes.Unauthenticated}, // unknown client id
		{"ops", tok("s3cret-ops"), "Ping", codes.PermissionDenied},         // not on its allow-list
		{"billing", tok("s3cret-billing"), codec.ReflectionMethod, codes.PermissionDenied},
	}
	for i, tt := range tests {
		c := newClient(t, busCfg, tt.client)
		msg := "auth-" + string(rune('a'+i))
		_, err := c.Call(ctx, "demo", tt.method, mustMarshal(t, &demo.Request{Message: msg}), tt.md)
		if got := status.Code(err); got != tt.want {
			t.Errorf("%s %v calling %s: %v, want %s", tt.client, tt.md, tt.method, err, tt.want)
			continue
		}
		seen := rec.calls(msg)
		if tt.want != codes.OK {
			if len(seen) != 0 {
				t.Errorf("%s: a refused call reached the target %d times", tt.client, len(seen))
			}
			continue
		}
		if len(seen) != 1 {
			t.Fatalf("%s: the target saw an allowed call %d times", tt.client, len(seen))
		}
		if v := seen[0].Get(vserver.DefaultTokenHeader); len(v) != 0 {
			t.Errorf("%s: the target saw the token %q", tt.client, v)
		}
		if v := seen[0].Get("user-id"); !slices.Equal(v, []string{"7"}) {
			t.Errorf("%s: the target saw user-id %q, want the caller's other metadata", tt.client, v)
		}
	}
}

// TestForgedCopyIsAuthenticated: a message that copies an answered call's
// client and request ids but names its own reply address gets no stored
// reply; it is a request of its own, and auth refuses it.
func TestForgedCopyIsAuthenticated(t *testing.T) {
	t.Parallel()
	busCfg := startKafka(t)
	rec := &recorder{seen: map[string][]metadata.MD{}}
	cfg := serverConfig(busCfg, startRecordingDemo(t, "demo-1", rec.intercept))
	cfg.Plugins = []vrpc.PluginConf{{Name: "auth", Enabled: true, Settings: map[string]any{
		"clients": map[string]any{"billing": map[string]any{"token": "s3cret-billing", "allow": []any{"*"}}},
	}}}
	startServer(t, cfg)
	ctx := testContext(t)
	raw := openBus(t, busCfg)
	// call publishes request forged-1 of client billing, asking for the
	// reply at an inbox of its own, and returns that reply.
	call := func(inbox string, md metadata.MD) *vrpcpb.Response {
		t.Helper()
		replies := make(chan *vrpcpb.Response, 1)
		in, err := raw.(rpcbus.Inboxer).Inbox(ctx, inbox, func(m *rpcbus.Message) {
			if resp, err := codec.DecodeResponse(m.Value); err == nil {
				select {
				case replies <- resp:
				default:
				}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		body, err := codec.EncodeRequest(&vrpcpb.Request{
			Id: "forged-1", ClientId: "billing", ReplyTo: in.Address(), Target: "demo",
			Method: "/demo.Demo/Ping", Payload: mustMarshal(t, &demo.Request{Message: "secret reply"}),
			Metadata: codec.MetadataToWire(md), DeadlineUnixNano: time.Now().Add(time.Minute).UnixNano(),
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := raw.Publish(ctx, "vrpc.requests.demo", &rpcbus.Message{Value: body}); err != nil {
			t.Fatal(err)
		}
		select {
		case resp := <-replies:
			return resp
		case <-ctx.Done():
			t.Fatalf("no reply at %s", inbox)
			return nil
		}
	}

	legit := call("vrpc.responses.billing", metadata.Pairs(vserver.DefaultTokenHeader, "s3cret-billing"))
	if legit.GetStatus().GetCode() != 0 || len(legit.Payload) == 0 {
		t.Fatalf("the caller with its token got %v", legit)
	}
	forged := call("vrpc.responses.eavesdropper", nil)
	if code := codes.Code(forged.GetStatus().GetCode()); code != codes.Unauthenticated || len(forged.Payload) != 0 {
		t.Fatalf("the forged copy got code %s and %d payload bytes, want UNAUTHENTICATED and none", code, len(forged.Payload))
	}
	if n := len(rec.calls("secret reply")); n != 1 {
		t.Errorf("the target ran the call %d times, want 1", n)
	}
}
