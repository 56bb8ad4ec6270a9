package vserver_test

import (
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/example/demo"
)

// TestRateLimit: with a refill rate too slow to matter during the test,
// a bucket lets exactly burst calls through and refuses the next with
// RESOURCE_EXHAUSTED, a retry hint and a RetryInfo detail. Client buckets
// are per client id; the target's bucket is shared by all of them, and a
// call refused by its client's bucket does not spend the target's token.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	busCfg := startKafka(t)
	cd, addr := startCountingDemo(t)
	cfg := serverConfig(busCfg, addr)
	cfg.Plugins = []vrpc.PluginConf{{Name: "ratelimit", Enabled: true, Settings: map[string]any{
		"per_target": map[string]any{"rate": 0.0001, "burst": 5},
		"per_client": map[string]any{"rate": 0.0001, "burst": 2},
		"clients":    map[string]any{"batch": map[string]any{"rate": 0.0001, "burst": 10}},
	}}}
	startServer(t, cfg)
	ctx := testContext(t)
	call := func(clientID string) error {
		c := newClient(t, busCfg, clientID)
		_, err := c.Call(ctx, "demo", "/demo.Demo/Ping", mustMarshal(t, &demo.Request{Message: "x"}), nil)
		return err
	}
	want := func(clientID string, code codes.Code, what string) {
		t.Helper()
		err := call(clientID)
		if status.Code(err) != code {
			t.Fatalf("%s: %s got %v, want %s", what, clientID, err, code)
		}
		if code != codes.ResourceExhausted {
			return
		}
		st := status.Convert(err)
		if !strings.Contains(st.Message(), "retry after") {
			t.Errorf("%s: message %q has no retry hint", what, st.Message())
		}
		var ri *errdetails.RetryInfo
		for _, d := range st.Details() {
			if r, ok := d.(*errdetails.RetryInfo); ok {
				ri = r
			}
		}
		if ri == nil || ri.GetRetryDelay().AsDuration() <= 0 {
			t.Errorf("%s: details %v, want a RetryInfo with a positive delay", what, st.Details())
		}
	}

	want("a", codes.OK, "client a, 1 of its burst 2")
	want("a", codes.OK, "client a, 2 of 2")
	want("a", codes.ResourceExhausted, "client a over its burst")
	want("b", codes.OK, "client b has a bucket of its own") // target: 3 of 5
	want("batch", codes.OK, "batch, burst 10")              // target: 4 of 5
	want("batch", codes.OK, "batch")                        // target: 5 of 5
	want("batch", codes.ResourceExhausted, "target over its burst 5, though batch has tokens")
	want("b", codes.ResourceExhausted, "target over its burst")
	if n := cd.calls.Load(); n != 5 {
		t.Errorf("target executed %d calls, want the 5 allowed", n)
	}
}
