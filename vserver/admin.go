package vserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/nextpkg/vrpc/internal/version"
	"github.com/nextpkg/vrpc/rpcbus"
)

const (
	// probeTimeout bounds each check of /readyz and /debug/vrpc, and each
	// question to the bus of a /metrics scrape.
	probeTimeout = 2 * time.Second
	// pluginStopTimeout bounds the plugins' Stop hooks together.
	pluginStopTimeout = 10 * time.Second
)

// The admin endpoint on host:port:
//
//	/healthz      200 while the process runs
//	/readyz       503 with a "bus" line naming what it waits for while
//	              the server waits for its bus at start-up;
//	              200 when consuming, the bus answers, the group gave this
//	              server partitions, it is making progress (see
//	              progressCheck) and every target answers; else 503, one
//	              line per check either way
//	/metrics      the server's Prometheus registry (Registry)
//	/debug/vrpc   JSON: topics, consumer group and lag, the backlog of each
//	              request topic, in flight, counters, targets' status,
//	              plugins
func (s *Server) adminMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", s.serveReady)
	mux.Handle("/metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      s.registry, // promhttp_metric_handler_errors_total
	}))
	mux.HandleFunc("/debug/vrpc", s.serveDebug)
	return mux
}

// Registry is the server's Prometheus registry, served on /metrics. It
// always holds the server's own metrics (vrpc_server_in_flight, the Stats
// counters, targets' and the bus's state, consumer lag) and the Go and
// process collectors; the metrics plugin adds the per-call metrics.
// Register more collectors on it to have them served too.
func (s *Server) Registry() *prometheus.Registry { return s.registry }

func (s *Server) newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newServerCollector(s),
	)
	reg.MustRegister(s.limits.collectors()...)
	return reg
}

func (s *Server) pluginEnv() PluginEnv {
	names := make([]string, 0, len(s.targets))
	for name := range s.cfg.Targets {
		names = append(names, name)
	}
	sort.Strings(names)
	return PluginEnv{Server: s.cfg.Name, Targets: names, Registerer: s.registry, TracerProvider: s.tracerProvider, Version: version.Release, Logger: s.log}
}

func (s *Server) subscription() rpcbus.Subscription {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sub
}

// check is one line of /readyz.
type check struct {
	name string
	err  error
	note string
}

// readiness runs the checks of /readyz, at once.
func (s *Server) readiness(ctx context.Context) []check {
	select {
	case <-s.ready:
	default:
		if c, ok := s.busWaitCheck(time.Now()); ok {
			return []check{c, {name: "consuming", err: fmt.Errorf("not consuming yet")}}
		}
		return []check{{name: "consuming", err: fmt.Errorf("not consuming yet")}}
	}
	select {
	case <-s.quit:
		return []check{{name: "consuming", err: fmt.Errorf("stopping")}}
	default:
	}
	names := make([]string, 0, len(s.targets))
	for name := range s.targets {
		names = append(names, name)
	}
	sort.Strings(names)
	checks := make([]check, 3+len(names))
	checks[2] = s.progressCheck(time.Now())
	var wg sync.WaitGroup
	wg.Go(func() {
		checks[0] = check{name: "bus"}
		if p, ok := s.bus.(rpcbus.Pinger); ok {
			checks[0].err = p.Ping(ctx)
		}
	})
	wg.Go(func() {
		c := check{name: "consumer"}
		if r, ok := s.subscription().(rpcbus.StatusReporter); ok {
			st, err := r.Status(ctx)
			switch n := st.AssignedPartitions(); {
			case err != nil:
				c.err = err
			case n == 0:
				c.err = fmt.Errorf("group %s has given this server no partitions of %v (more servers than partitions, or a rebalance in progress)", st.Group, s.Topics())
			default:
				c.note = fmt.Sprintf("%d partitions of %d", n, len(st.Partitions))
			}
		}
		checks[1] = c
	})
	for i, name := range names {
		wg.Go(func() {
			checks[3+i] = check{name: "target " + name, err: s.targets[name].probe(ctx)}
		})
	}
	wg.Wait()
	return checks
}

// progressCheck fails when the server is saturated and stalled: every
// slot it has (max_in_flight, counting deliveries it left unacknowledged)
// is taken, or a delivery waits for room in max_in_flight_bytes, and no
// delivery has completed for longer than any one request may
// legitimately take: its longest target timeout plus reply_timeout, and
// never less than twice reply_timeout. A server merely busy with calls as
// slow as its targets are allowed to be is ready; one whose workers are
// all held by something the limits do not bound is not, which is what an
// operator should be told, since the bus goes on holding its requests.
func (s *Server) progressCheck(now time.Time) check {
	c := check{name: "progress"}
	busy, unacked := s.busy.Load(), s.unacked.Load()
	waiting := s.gate.waiting.Load() > 0
	if busy+unacked < int64(s.cfg.MaxInFlight) && !waiting {
		return c
	}
	window := 2 * s.cfg.ReplyTimeout
	for _, t := range s.targets {
		window = max(window, t.timeout+s.cfg.ReplyTimeout)
	}
	if idle := s.progress.since(now); idle > window {
		c.err = fmt.Errorf("stalled: no request completed for %v (over %v) with %d in flight and %d left unacknowledged (max_in_flight %d), %d bytes in flight (max_in_flight_bytes %d)",
			idle.Round(time.Second), window, busy, unacked, s.cfg.MaxInFlight, s.gate.inUse(), s.gate.max)
	}
	return c
}

func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), probeTimeout)
	defer cancel()
	checks := s.readiness(ctx)
	var b strings.Builder
	ok := true
	for _, c := range checks {
		if c.err != nil {
			ok = false
			fmt.Fprintf(&b, "[-]%s failed: %v\n", c.name, c.err)
		} else if c.note != "" {
			fmt.Fprintf(&b, "[+]%s ok: %s\n", c.name, c.note)
		} else {
			fmt.Fprintf(&b, "[+]%s ok\n", c.name)
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
		b.WriteString("not ready\n")
	} else {
		b.WriteString("ok\n")
	}
	_, _ = w.Write([]byte(b.String()))
}

// probe asks the target's grpc.health.v1 service. Any answer but
// UNAVAILABLE, DEADLINE_EXCEEDED or NOT_SERVING counts as reachable: a
// target without the health service answers UNIMPLEMENTED, which proves
// it is there.
func (t *target) probe(ctx context.Context) error {
	resp, err := healthpb.NewHealthClient(t.conn).Check(ctx, &healthpb.HealthCheckRequest{})
	switch status.Code(err) {
	case codes.OK:
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("%s: health status %s", t.conn.Target(), resp.GetStatus())
		}
		return nil
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		return fmt.Errorf("%s: %s: %s", t.conn.Target(), status.Code(err), status.Convert(err).Message())
	}
	return nil
}

// up reports the target's conn is not failing: IDLE (no call for a while)
// and CONNECTING count as up, TRANSIENT_FAILURE and SHUTDOWN as down.
func (t *target) up() bool {
	switch t.conn.GetState() {
	case connectivity.TransientFailure, connectivity.Shutdown:
		return false
	}
	return true
}

// DebugInfo is the JSON document of /debug/vconfig.
type DebugInfo struct {
	Server      string   `json:"server"`
	Version     string   `json:"version"`
	Bus         DebugBus `json:"bus"`
	Topics      []string `json:"topics"`
	InFlight    int64    `json:"in_flight"`
	MaxInFlight int      `json:"max_in_flight"`
	// InFlightBytes are the bytes of the requests in flight, bounded by
	// MaxInFlightBytes (max_in_flight_bytes).
	InFlightBytes    int64                      `json:"in_flight_bytes"`
	MaxInFlightBytes int64                      `json:"max_in_flight_bytes"`
	Counters         DebugCounters              `json:"counters"`
	Consumer         *rpcbus.SubscriptionStatus `json:"consumer,omitempty"`
	ConsumerErr      string                     `json:"consumer_error,omitempty"`
	// Backlog is, per request topic, what the server's group has yet to
	// consume (Server.Backlog), as the bus counted it at BacklogAt (at
	// most a few seconds before); BacklogErr why the bus could not be
	// asked.
	Backlog    []rpcbus.TopicBacklog  `json:"backlog,omitempty"`
	BacklogAt  time.Time              `json:"backlog_at,omitzero"`
	BacklogErr string                 `json:"backlog_error,omitempty"`
	Targets    map[string]DebugTarget `json:"targets"`
	Plugins    []string               `json:"plugins"`
	Dedup      string                 `json:"dedup"`
	// Warnings are the server's Warnings.
	Warnings []string `json:"warnings,omitempty"`
}

// DebugBus is the bus part of DebugInfo. Brokers are the servers the bus
// reports (rpcbus.Addresser), or else the configured ones, with
// credentials redacted either way. Connected is absent when the bus cannot
// tell (it does not implement rpcbus.Pinger). Settings are rpc_bus.settings
// with secrets masked (rpcbus.RedactSettings).
type DebugBus struct {
	Type      string         `json:"type"`
	Brokers   []string       `json:"brokers,omitempty"`
	Settings  map[string]any `json:"settings,omitempty"`
	Connected *bool          `json:"connected,omitempty"`
	Error     string         `json:"error,omitempty"`
}

// DebugCounters are the server's Stats.
type DebugCounters struct {
	Expired     uint64 `json:"expired"`
	DeadLetters uint64 `json:"dead_letters"`
	Duplicates  uint64 `json:"duplicates"`
	Rejected    uint64 `json:"rejected"`
}

// DebugTarget is one target's status: its conn's connectivity state and the
// outcome of a health probe.
type DebugTarget struct {
	Endpoint  string `json:"endpoint"`
	State     string `json:"state"`
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
}

// busAddresses are the bus's servers as /debug/vrpc shows them: as the bus
// reports them, or the configured ones, never with a password.
func (s *Server) busAddresses() []string {
	if a, ok := s.bus.(rpcbus.Addresser); ok {
		return a.Addresses()
	}
	return rpcbus.RedactAddresses(s.cfg.RpcBus.Brokers)
}

// Debug gathers what /debug/vrpc serves. It asks the bus and probes the
// targets, each within ctx.
func (s *Server) Debug(ctx context.Context) DebugInfo {
	st := s.Stats()
	info := DebugInfo{
		Server:           s.cfg.Name,
		Version:          version.Release,
		Bus:              DebugBus{Type: s.cfg.RpcBus.Type, Brokers: s.busAddresses(), Settings: rpcbus.RedactSettings(s.cfg.RpcBus.Settings)},
		Topics:           s.Topics(),
		InFlight:         s.busy.Load(),
		MaxInFlight:      s.cfg.MaxInFlight,
		InFlightBytes:    s.gate.inUse(),
		MaxInFlightBytes: s.gate.max,
		Counters:         DebugCounters{Expired: st.Expired, DeadLetters: st.DeadLetters, Duplicates: st.Duplicates, Rejected: st.Rejected},
		Targets:          make(map[string]DebugTarget, len(s.targets)),
		Plugins:          make([]string, 0, len(s.plugins)),
		Dedup:            s.cfg.Dedup.Store,
		Warnings:         s.Warnings(),
	}
	for _, bp := range s.plugins {
		info.Plugins = append(info.Plugins, bp.Name)
	}
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	if p, ok := s.bus.(rpcbus.Pinger); ok {
		wg.Go(func() {
			err := p.Ping(ctx)
			up := err == nil
			mu.Lock()
			defer mu.Unlock()
			info.Bus.Connected = &up
			if err != nil {
				info.Bus.Error = err.Error()
			}
		})
	}
	if r, ok := s.subscription().(rpcbus.StatusReporter); ok {
		wg.Go(func() {
			cs, err := r.Status(ctx)
			mu.Lock()
			defer mu.Unlock()
			info.Consumer = &cs
			if err != nil {
				info.ConsumerErr = err.Error()
			}
		})
	}
	wg.Go(func() {
		topics, at, err := s.Backlog(ctx)
		mu.Lock()
		defer mu.Unlock()
		info.Backlog, info.BacklogAt = topics, at
		if err != nil {
			info.BacklogErr = err.Error()
		}
	})
	for name, t := range s.targets {
		wg.Go(func() {
			dt := DebugTarget{Endpoint: s.cfg.Targets[name].Endpoint, State: t.conn.GetState().String()}
			if err := t.probe(ctx); err != nil {
				dt.Error = err.Error()
			} else {
				dt.Reachable = true
			}
			mu.Lock()
			defer mu.Unlock()
			info.Targets[name] = dt
		})
	}
	wg.Wait()
	return info
}

func (s *Server) serveDebug(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), probeTimeout)
	defer cancel()
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(s.Debug(ctx))
}

// serverCollector exports the server's own state at scrape time: nothing
// on the hot path but the in-flight counter, which the server keeps anyway.
type serverCollector struct {
	s                                                *Server
	info, inFlight, maxInFlight                      *prometheus.Desc
	inFlightBytes, maxInFlightBytes, unacked         *prometheus.Desc
	expired, dedupHits, deadLetters, rejected        *prometheus.Desc
	targetUp, busUp, consumerLag, consumerPartitions *prometheus.Desc
	backlog, backlogUnacked                          *prometheus.Desc
}

func newServerCollector(s *Server) *serverCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &serverCollector{
		s:                  s,
		info:               d("vrpc_server_info", "Always 1: the server's name (consumer group) and vRPC version.", "server", "version"),
		inFlight:           d("vrpc_server_in_flight", "Requests taken off the bus and not yet answered and acknowledged."),
		maxInFlight:        d("vrpc_server_max_in_flight", "The max_in_flight setting: vrpc_server_in_flight stays at or below it."),
		inFlightBytes:      d("vrpc_server_in_flight_bytes", "Bytes of the requests taken off the bus and not yet answered and acknowledged."),
		maxInFlightBytes:   d("vrpc_server_max_in_flight_bytes", "The max_in_flight_bytes setting: past it the server waits for room before taking more."),
		unacked:            d("vrpc_server_unacknowledged", "Deliveries left unacknowledged (a dead letter not set aside), for the bus to deliver again; they hold max_in_flight slots."),
		expired:            d("vrpc_server_expired_total", "Requests dropped unserved because their deadline had passed when the server took them off the bus (Stats().Expired)."),
		dedupHits:          d("vrpc_server_dedup_hits_total", "Requests delivered again and answered from the dedup store without calling the target (Stats().Duplicates)."),
		deadLetters:        d("vrpc_server_dead_letters_total", "Unreadable messages set aside on <topic>.dlq (Stats().DeadLetters)."),
		rejected:           d("vrpc_server_rejected_total", "Requests refused by security (unsigned, unknown or revoked key, bad signature, outside the replay window, wrong topic, foreign reply address, not allowed), never run or answered. Absent when security is off.", "reason"),
		targetUp:           d("vrpc_server_target_up", "0 while the gRPC conn to the target is failing (TRANSIENT_FAILURE), else 1.", "target"),
		busUp:              d("vrpc_server_bus_up", "1 when the bus answered a ping during this scrape, else 0. Absent for buses that cannot be pinged."),
		consumerLag:        d("vrpc_server_consumer_lag", "Messages on a partition consumed by this server that are not yet served and committed. Absent for buses that cannot tell.", "topic", "partition"),
		consumerPartitions: d("vrpc_server_consumer_partitions", "Partitions the consumer group gave this server. Absent for buses that cannot tell."),
		backlog:            d("vrpc_server_request_backlog", "Requests on the topic that the server's group has yet to consume, group-wide: waiting on the bus, and (except on AMQP) delivered and not yet acknowledged. Counted by the bus at most every 5 s. Absent where the bus cannot tell (MQTT; see /debug/vrpc for why).", "topic"),
		backlogUnacked:     d("vrpc_server_request_backlog_unacknowledged", "Of vrpc_server_request_backlog, the requests delivered to a member of the group and not yet acknowledged. Absent where the bus does not count them apart (Kafka, AMQP, MQTT).", "topic"),
	}
}

func (c *serverCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.info, c.inFlight, c.maxInFlight, c.inFlightBytes, c.maxInFlightBytes, c.unacked, c.expired, c.dedupHits, c.deadLetters, c.rejected,
		c.targetUp, c.busUp, c.consumerLag, c.consumerPartitions, c.backlog, c.backlogUnacked} {
		ch <- d
	}
}

func (c *serverCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	st := s.Stats()
	ch <- prometheus.MustNewConstMetric(c.info, prometheus.GaugeValue, 1, s.cfg.Name, version.Release)
	ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(s.busy.Load()))
	ch <- prometheus.MustNewConstMetric(c.maxInFlight, prometheus.GaugeValue, float64(s.cfg.MaxInFlight))
	ch <- prometheus.MustNewConstMetric(c.inFlightBytes, prometheus.GaugeValue, float64(s.gate.inUse()))
	ch <- prometheus.MustNewConstMetric(c.maxInFlightBytes, prometheus.GaugeValue, float64(s.gate.max))
	ch <- prometheus.MustNewConstMetric(c.unacked, prometheus.GaugeValue, float64(s.unacked.Load()))
	ch <- prometheus.MustNewConstMetric(c.expired, prometheus.CounterValue, float64(st.Expired))
	ch <- prometheus.MustNewConstMetric(c.dedupHits, prometheus.CounterValue, float64(st.Duplicates))
	ch <- prometheus.MustNewConstMetric(c.deadLetters, prometheus.CounterValue, float64(st.DeadLetters))
	if g := s.guard; g != nil {
		for r := range numRejectReasons {
			ch <- prometheus.MustNewConstMetric(c.rejected, prometheus.CounterValue, float64(g.rejected[r].Load()), r.String())
		}
	}
	for name, t := range s.targets {
		ch <- prometheus.MustNewConstMetric(c.targetUp, prometheus.GaugeValue, boolValue(t.up()), name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	if p, ok := s.bus.(rpcbus.Pinger); ok {
		ch <- prometheus.MustNewConstMetric(c.busUp, prometheus.GaugeValue, boolValue(p.Ping(ctx) == nil))
	}
	if topics, _, err := s.Backlog(ctx); err == nil {
		for _, tb := range topics {
			if tb.Messages >= 0 {
				ch <- prometheus.MustNewConstMetric(c.backlog, prometheus.GaugeValue, float64(tb.Messages), tb.Topic)
			}
			if tb.Unacknowledged >= 0 {
				ch <- prometheus.MustNewConstMetric(c.backlogUnacked, prometheus.GaugeValue, float64(tb.Unacknowledged), tb.Topic)
			}
		}
	}
	if r, ok := s.subscription().(rpcbus.StatusReporter); ok {
		if cs, err := r.Status(ctx); err == nil {
			ch <- prometheus.MustNewConstMetric(c.consumerPartitions, prometheus.GaugeValue, float64(cs.AssignedPartitions()))
			for _, p := range cs.Partitions {
				if p.Assigned && p.Lag >= 0 {
					ch <- prometheus.MustNewConstMetric(c.consumerLag, prometheus.GaugeValue, float64(p.Lag),
						p.Topic, strconv.Itoa(int(p.Partition)))
				}
			}
		}
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
