package vserver_test

import (
	"encoding/json"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/rpcbus"
)

// TestDashboardMetricNames: every vrpc_* metric the Grafana dashboard in
// doc/ queries is one a server (with the metrics plugin) or a client
// exports, so that renaming a metric cannot leave the dashboard blank.
func TestDashboardMetricNames(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../doc/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(b) {
		t.Fatal("doc/grafana-dashboard.json is not JSON")
	}
	busCfg := startKafka(t)
	cfg := serverConfig(busCfg, startDemo(t, "demo-1"))
	cfg.Host, cfg.Port = "127.0.0.1", 0
	cfg.Plugins = []vrpc.PluginConf{{Name: "metrics", Enabled: true}}
	srv := startServer(t, cfg)
	c := newClient(t, busCfg, "dash")
	if _, err := c.Call(testContext(t), "demo", "/demo.Demo/Ping", mustMarshal(t, &demo.Request{Message: "x"}), nil); err != nil {
		t.Fatal(err)
	}
	var server metrics
	eventually(t, "consumer lag and backlog on /metrics", func() bool {
		server = scrape(t, srv.AdminAddr())
		return server["vrpc_server_consumer_lag"] != nil && server["vrpc_server_request_backlog"] != nil
	})
	// Kafka does not count the backlog's unacknowledged requests apart;
	// the memory bus does.
	memCfg := serverConfig(rpcbus.Config{Type: "memory", Brokers: []string{t.Name()}}, startDemo(t, "demo-2"))
	memCfg.Host, memCfg.Port = "127.0.0.1", 0
	mem := startServer(t, memCfg)
	var memServer metrics
	eventually(t, "the unacknowledged backlog on the memory bus's /metrics", func() bool {
		memServer = scrape(t, mem.AdminAddr())
		return memServer["vrpc_server_request_backlog_unacknowledged"] != nil
	})

	exported := map[string]bool{}
	for _, m := range []metrics{server, memServer} {
		for name, mf := range m {
			exported[name] = true
			if mf.GetType().String() == "HISTOGRAM" {
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					exported[name+suffix] = true
				}
			}
		}
	}
	// The client's vectors without samples (no timeout yet) are not
	// gathered: take every name the collector describes.
	ch := make(chan *prometheus.Desc, 64)
	c.Collector().Describe(ch)
	close(ch)
	for d := range ch {
		name := regexp.MustCompile(`fqName: "([^"]+)"`).FindStringSubmatch(d.String())[1]
		for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
			exported[name+suffix] = true
		}
	}
	used := map[string]bool{}
	for _, m := range regexp.MustCompile(`vrpc_(server|client)_[a-z_]+`).FindAllString(string(b), -1) {
		used[m] = true
	}
	var missing []string
	for m := range used {
		if !exported[m] {
			missing = append(missing, m)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("the dashboard queries metrics nobody exports: %s", strings.Join(missing, ", "))
	}
	if len(used) < 15 {
		t.Errorf("the dashboard uses only %d vrpc metrics", len(used))
	}
}
