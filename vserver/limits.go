package vserver

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nextpkg/vrpc/rpcbus"
)

// Limits the server counts in vrpc_server_refused_total{limit}.
const (
	limitIDBytes       = "max_id_bytes"
	limitMetadataBytes = "max_metadata_bytes"
	limitMessageSize   = "max_message_size"
	limitInFlightBytes = "max_in_flight_bytes"
	limitPerClient     = "max_in_flight_per_client"
)

// envelopeOverhead is what a request envelope may hold beyond its payload,
// metadata and the five fields max_id_bytes bounds: version, encoding,
// deadline, send time, JSON options, trace context, key id and tags.
const envelopeOverhead = 16 << 10

// limitMetrics are the counters of what the limits cost: requests refused,
// replies dropped, dead letters that could not be set aside.
type limitMetrics struct {
	refused        *prometheus.CounterVec
	repliesDropped *prometheus.CounterVec
	dlqFailures    *prometheus.CounterVec
}

func newLimitMetrics() limitMetrics {
	return limitMetrics{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vrpc_server_refused_total",
			Help: "Requests refused for a limit (the limit's config key): set aside on <topic>.dlq, answered RESOURCE_EXHAUSTED or INVALID_ARGUMENT where the request says where to.",
		}, []string{"limit"}),
		repliesDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vrpc_server_replies_dropped_total",
			Help: "Replies not published: reason unknown_address, too_large, timeout (reply_timeout passed), closed.",
		}, []string{"reason"}),
		dlqFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vrpc_server_dead_letter_failures_total",
			Help: "Messages that could not be set aside: reason too_large or no_consumer (skipped: acknowledged, logged), closed, or timeout (dead_letter_timeout passed: left unacknowledged, delivered again).",
		}, []string{"reason"}),
	}
}

func (m limitMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.refused, m.repliesDropped, m.dlqFailures}
}

// byteGate bounds the bytes of the requests being served
// (max_in_flight_bytes). take waits for room rather than refuse: the bus
// keeps what the server has not taken, and the server takes it once
// requests in flight finish.
type byteGate struct {
	max     int64
	mu      sync.Mutex
	used    int64
	room    chan struct{} // closed when used goes down; replaced then
	waiting atomic.Int32  // takers waiting for room
}

func newByteGate(max int) *byteGate {
	return &byteGate{max: int64(max), room: make(chan struct{})}
}

// take waits until n more bytes fit (or nothing else is in flight, so
// that a request as large as the limit is served alone) and takes them.
// Once stop is closed it takes them without waiting: a server that is
// stopping serves what the bus handed it during the drain rather than
// leave it unacknowledged until drain_timeout.
func (g *byteGate) take(n int64, stop <-chan struct{}) {
	stopping := false
	for {
		g.mu.Lock()
		if g.used == 0 || g.used+n <= g.max || stopping {
			g.used += n
			g.mu.Unlock()
			return
		}
		room := g.room
		g.mu.Unlock()
		g.waiting.Add(1)
		select {
		case <-room:
			g.waiting.Add(-1)
		case <-stop:
			g.waiting.Add(-1)
			stopping = true
		}
	}
}

func (g *byteGate) give(n int64) {
	if n == 0 {
		return
	}
	g.mu.Lock()
	g.used -= n
	close(g.room)
	g.room = make(chan struct{})
	g.mu.Unlock()
}

func (g *byteGate) inUse() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.used
}

// clientSlots counts each client's requests in flight, for
// max_in_flight_per_client.
type clientSlots struct {
	max int
	mu  sync.Mutex
	n   map[string]int
}

func (c *clientSlots) take(client string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[client] >= c.max {
		return false
	}
	c.n[client]++
	return true
}

func (c *clientSlots) give(client string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[client] <= 1 {
		delete(c.n, client) // the map holds clients in flight only
		return
	}
	c.n[client]--
}

// progress is what the /readyz progress check reads: when a delivery last
// completed (served or set aside, acknowledged or not).
type progress struct {
	last atomic.Int64 // unix nanoseconds
}

func (p *progress) done(now time.Time) { p.last.Store(now.UnixNano()) }

func (p *progress) since(now time.Time) time.Duration {
	return now.Sub(time.Unix(0, p.last.Load()))
}

// deliverySize is what a delivery counts against max_in_flight_bytes: its
// bytes as the bus handed them over.
func deliverySize(d *rpcbus.Delivery) int64 {
	n := len(d.Value) + len(d.Key)
	for k, v := range d.Headers {
		n += len(k) + len(v)
	}
	return int64(n)
}
