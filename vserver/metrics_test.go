package vserver_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/codec"
	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/internal/vtest"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vrpcpb"
	"github.com/nextpkg/vrpc/vserver"
)

// httpGet fetches url from the admin endpoint.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// scrape reads /metrics as Prometheus does.
func scrape(t *testing.T, addr string) metrics {
	t.Helper()
	code, body := httpGet(t, "http://"+addr+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, body)
	}
	return metrics(fams)
}

type metrics map[string]*dto.MetricFamily

// find returns the sample of name whose labels include labels, or nil.
func (m metrics) find(name string, labels map[string]string) *dto.Metric {
	f := m[name]
	if f == nil {
		return nil
	}
next:
	for _, s := range f.Metric {
		for k, v := range labels {
			found := false
			for _, l := range s.Label {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		return s
	}
	return nil
}

// value is a counter's or gauge's value, or a histogram's count; -1 when
// the sample is absent.
func (m metrics) value(name string, labels map[string]string) float64 {
	s := m.find(name, labels)
	switch {
	case s == nil:
		return -1
	case s.Counter != nil:
		return s.Counter.GetValue()
	case s.Gauge != nil:
		return s.Gauge.GetValue()
	case s.Histogram != nil:
		return float64(s.Histogram.GetSampleCount())
	}
	return -1
}

// rawCaller publishes envelopes straight onto a request topic and reads
// the replies, as a client would, so that a test can send what a client
// never does: the same request twice, an expired one, garbage.
type rawCaller struct {
	bus     rpcbus.Bus
	inbox   rpcbus.Inbox
	replies chan *vrpcpb.Response
}

func newRawCaller(t *testing.T, busCfg rpcbus.Config, clientID string) *rawCaller {
	t.Helper()
	rc := &rawCaller{bus: openBus(t, busCfg), replies: make(chan *vrpcpb.Response, 16)}
	inbox, err := rc.bus.(rpcbus.Inboxer).Inbox(testContext(t), "vrpc.responses."+clientID, func(m *rpcbus.Message) {
		if resp, err := codec.DecodeResponse(m.Value); err == nil {
			rc.replies <- resp
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = inbox.Close() })
	rc.inbox = inbox
	return rc
}

func (rc *rawCaller) publish(t *testing.T, body []byte) {
	t.Helper()
	if err := rc.bus.Publish(testContext(t), "vrpc.requests.demo", &rpcbus.Message{Value: body}); err != nil {
		t.Fatal(err)
	}
}

func (rc *rawCaller) request(t *testing.T, id string, deadline time.Time) []byte {
	t.Helper()
	body, err := codec.EncodeRequest(&vrpcpb.Request{
		Id: id, ClientId: "raw-caller", ReplyTo: rc.inbox.Address(), Target: "demo",
		Method: "/demo.Demo/Ping", Payload: mustMarshal(t, &demo.Request{Message: id}),
		DeadlineUnixNano: deadline.UnixNano(), SentUnixNano: time.Now().UnixNano(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func (rc *rawCaller) reply(t *testing.T, id string) *vrpcpb.Response {
	t.Helper()
	ctx := testContext(t)
	for {
		select {
		case r := <-rc.replies:
			if r.Id == id {
				return r
			}
		case <-ctx.Done():
			t.Fatalf("no reply to %s", id)
		}
	}
}

// eventually polls cond until it holds (a bound for a loaded machine, not
// a timing assertion).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx := testContext(t)
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("never: %s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestMetricsAfterKnownCalls makes a known sequence of calls and
// deliveries and reads every metric back from /metrics over HTTP.
func TestMetricsAfterKnownCalls(t *testing.T) {
	t.Parallel()
	busCfg := startKafka(t)
	cfg := serverConfig(busCfg, startDemo(t, "demo-1"))
	cfg.Host, cfg.Port = "127.0.0.1", 0
	cfg.Plugins = []vrpc.PluginConf{{Name: "metrics", Enabled: true}}
	srv := startServer(t, cfg)
	c := newClient(t, busCfg, "metrics-caller")
	raw := newRawCaller(t, busCfg, "raw-caller")
	ctx := testContext(t)

	// Before any call: every series of the target exists, at zero.
	m := scrape(t, srv.AdminAddr())
	for _, name := range []string{"vrpc_server_expired_total", "vrpc_server_dedup_hits_total", "vrpc_server_dead_letters_total", "vrpc_server_in_flight"} {
		if v := m.value(name, nil); v != 0 {
			t.Errorf("%s = %v before any call, want 0", name, v)
		}
	}
	if v := m.value("vrpc_server_queue_wait_seconds", map[string]string{"target": "demo"}); v != 0 {
		t.Errorf("queue wait count %v before any call, want 0", v)
	}

	// 3 calls OK, 1 refused by the target.
	for range 3 {
		if _, err := c.Call(ctx, "demo", "Ping", mustMarshal(t, &demo.Request{Message: "hi"}), nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Call(ctx, "demo", "Ping", mustMarshal(t, &demo.Request{}), nil); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("empty message: %v, want INVALID_ARGUMENT", err)
	}
	// One request delivered twice: served once, then answered from the
	// dedup store.
	dup := raw.request(t, "dup-1", time.Now().Add(time.Minute))
	raw.publish(t, dup)
	raw.reply(t, "dup-1")
	raw.publish(t, dup)
	raw.reply(t, "dup-1")
	// One expired on arrival, one unreadable.
	raw.publish(t, raw.request(t, "late-1", time.Now().Add(-time.Second)))
	raw.publish(t, []byte("not an envelope"))
	eventually(t, "expired and dead letter counted, nothing in flight", func() bool {
		st := srv.Stats()
		return st.Expired == 1 && st.DeadLetters == 1 &&
			scrape(t, srv.AdminAddr()).value("vrpc_server_in_flight", nil) == 0
	})

	m = scrape(t, srv.AdminAddr())
	ping := map[string]string{"target": "demo", "method": "/demo.Demo/Ping"}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"vrpc_server_calls_total", map[string]string{"target": "demo", "method": "/demo.Demo/Ping", "code": "OK"}, 4},
		{"vrpc_server_calls_total", map[string]string{"target": "demo", "method": "/demo.Demo/Ping", "code": "InvalidArgument"}, 1},
		{"vrpc_server_target_duration_seconds", ping, 5},
		{"vrpc_server_queue_wait_seconds", map[string]string{"target": "demo"}, 5},
		{"vrpc_server_calls_in_flight", map[string]string{"target": "demo"}, 0},
		{"vrpc_server_max_in_flight", nil, 1024},
		{"vrpc_server_expired_total", nil, 1},
		{"vrpc_server_dedup_hits_total", nil, 1},
		{"vrpc_server_dead_letters_total", nil, 1},
		{"vrpc_server_target_up", map[string]string{"target": "demo"}, 1},
		{"vrpc_server_bus_up", nil, 1},
		{"vrpc_server_consumer_partitions", nil, 4},
		{"vrpc_server_info", map[string]string{"server": "test-server", "version": vrpc.Version}, 1},
	} {
		if got := m.value(tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	if f := m["go_goroutines"]; f == nil {
		t.Error("no Go runtime metrics")
	}
	// Every message is acknowledged and committed: the lag drains to 0
	// on each of the 4 partitions.
	eventually(t, "consumer lag 0 on 4 partitions", func() bool {
		m := scrape(t, srv.AdminAddr())
		f := m["vrpc_server_consumer_lag"]
		if f == nil || len(f.Metric) != 4 {
			return false
		}
		for _, s := range f.Metric {
			if s.Gauge.GetValue() != 0 {
				return false
			}
		}
		return true
	})
}

// TestMetricsWithoutPlugin: /metrics serves the server's own metrics even
// without the metrics plugin, and none of the per-call ones.
func TestMetricsWithoutPlugin(t *testing.T) {
	t.Parallel()
	busCfg := startKafka(t)
	cfg := serverConfig(busCfg, startDemo(t, "demo-1"))
	cfg.Host, cfg.Port = "127.0.0.1", 0
	srv := startServer(t, cfg)
	c := newClient(t, busCfg, "plain-caller")
	if _, err := c.Call(testContext(t), "demo", "Ping", mustMarshal(t, &demo.Request{Message: "hi"}), nil); err != nil {
		t.Fatal(err)
	}
	m := scrape(t, srv.AdminAddr())
	if v := m.value("vrpc_server_dedup_hits_total", nil); v != 0 {
		t.Errorf("vrpc_server_dedup_hits_total = %v, want 0", v)
	}
	if m["vrpc_server_calls_total"] != nil {
		t.Error("per-call metrics served without the metrics plugin")
	}
}

// TestAdminEndpoints checks /readyz and /debug/vrpc, with a target that
// answers and one that is down.
func TestAdminEndpoints(t *testing.T) {
	t.Parallel()
	busCfg := startKafka(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close() // nothing listens there any more
	cfg := vtest.ServerConfig(busCfg, map[string]vrpc.Target{
		"demo": {Endpoint: startDemo(t, "demo-1")},
		"gone": {Endpoint: down},
	})
	cfg.Host, cfg.Port = "127.0.0.1", 0
	cfg.Plugins = []vrpc.PluginConf{{Name: "metrics", Enabled: true}, {Name: "logger", Enabled: true}}
	srv := startServer(t, cfg)
	base := "http://" + srv.AdminAddr()

	if code, body := httpGet(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d %s", code, body)
	}
	code, body := httpGet(t, base+"/readyz")
	if code != http.StatusServiceUnavailable {
		t.Errorf("/readyz with a target down: %d, want 503\n%s", code, body)
	}
	for _, want := range []string{"[+]bus ok", "[+]consumer ok: 8 partitions of 8", "[+]target demo ok", "[-]target gone failed", down} {
		if !strings.Contains(body, want) {
			t.Errorf("/readyz does not say %q:\n%s", want, body)
		}
	}

	code, body = httpGet(t, base+"/debug/vrpc")
	if code != http.StatusOK {
		t.Fatalf("/debug/vrpc: %d %s", code, body)
	}
	var info vserver.DebugInfo
	if err := json.Unmarshal([]byte(body), &info); err != nil {
		t.Fatalf("/debug/vrpc is not JSON: %v\n%s", err, body)
	}
	if info.Server != "test-server" || len(info.Topics) != 2 || info.Bus.Connected == nil || !*info.Bus.Connected {
		t.Errorf("/debug/vrpc: %s", body)
	}
	if len(info.Bus.Brokers) != 1 || info.Bus.Brokers[0] != busCfg.Brokers[0] {
		t.Errorf("/debug/vrpc bus brokers %q, want the bus's own %q", info.Bus.Brokers, busCfg.Brokers)
	}
	if info.Consumer == nil || info.Consumer.Group != "test-server" || info.Consumer.AssignedPartitions() != 8 {
		t.Errorf("/debug/vrpc consumer: %+v (%s)", info.Consumer, info.ConsumerErr)
	}
	if d := info.Targets["demo"]; !d.Reachable || d.State == "" {
		t.Errorf("/debug/vrpc target demo: %+v", d)
	}
	if g := info.Targets["gone"]; g.Reachable || g.Error == "" {
		t.Errorf("/debug/vrpc target gone: %+v", g)
	}
	if strings.Join(info.Plugins, ",") != "metrics,logger" {
		t.Errorf("/debug/vrpc plugins %q", info.Plugins)
	}

	// The target conn to "gone" ends up failing; target_up says so.
	eventually(t, "vrpc_server_target_up{target=gone} 0", func() bool {
		m := scrape(t, srv.AdminAddr())
		return m.value("vrpc_server_target_up", map[string]string{"target": "gone"}) == 0 &&
			m.value("vrpc_server_target_up", map[string]string{"target": "demo"}) == 1
	})
}

// TestReadyzAllUp: with every target up, /readyz is 200.
func TestReadyzAllUp(t *testing.T) {
	t.Parallel()
	busCfg := startKafka(t)
	cfg := serverConfig(busCfg, startDemo(t, "demo-1"))
	cfg.Host, cfg.Port = "127.0.0.1", 0
	srv := startServer(t, cfg)
	if code, body := httpGet(t, "http://"+srv.AdminAddr()+"/readyz"); code != http.StatusOK || !strings.HasSuffix(body, "ok\n") {
		t.Errorf("/readyz: %d\n%s", code, body)
	}
}
