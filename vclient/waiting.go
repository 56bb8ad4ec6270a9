package vclient

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// WaitingCalls counts the client's calls in progress by what they wait
// for, with the age of the oldest of each kind (measured from the call's
// start). Every such call counts against max_pending and
// max_pending_bytes.
type WaitingCalls struct {
	// Publishing are the calls whose request the bus has not yet taken:
	// the broker has not acknowledged the publish, because it is down,
	// slow, or the client is retrying (retry.count). Calls that stay here
	// are the sign of a client cut off from its bus.
	Publishing int
	// OldestPublishing is how long the oldest of them has waited; zero
	// when there is none.
	OldestPublishing time.Duration
	// AwaitingReply are the calls whose request is on the bus and whose
	// reply has not come: queued for a server, being served, or their
	// reply on its way.
	AwaitingReply int
	// OldestAwaitingReply is how long the oldest of them has waited
	// (since its call started); zero when there is none.
	OldestAwaitingReply time.Duration
}

// Waiting counts the calls in progress, by what they wait for: the bus
// to take their request, or their reply. It looks at every call in
// progress (at most max_pending), so it is for metrics and debug pages,
// not for every call. The client's Collector exports it as
// vrpc_client_waiting_calls{state} and
// vrpc_client_oldest_waiting_seconds{state}, state being "publishing"
// or "awaiting_reply".
func (c *Client) Waiting() WaitingCalls {
	now := time.Now()
	var w WaitingCalls
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.pending {
		age := now.Sub(p.since)
		if p.published {
			w.AwaitingReply++
			w.OldestAwaitingReply = max(w.OldestAwaitingReply, age)
		} else {
			w.Publishing++
			w.OldestPublishing = max(w.OldestPublishing, age)
		}
	}
	return w
}

// The states of vrpc_client_waiting_calls and
// vrpc_client_oldest_waiting_seconds.
const (
	statePublishing    = "publishing"
	stateAwaitingReply = "awaiting_reply"
)

// waitingCollector exports Waiting at scrape time.
type waitingCollector struct {
	c             *Client
	calls, oldest *prometheus.Desc
}

func newWaitingCollector(c *Client, labels prometheus.Labels) *waitingCollector {
	return &waitingCollector{
		c: c,
		calls: prometheus.NewDesc("vrpc_client_waiting_calls",
			`Calls in progress by what they wait for: "publishing" (the bus has not yet taken the request: it is down or slow) or "awaiting_reply" (the request is on the bus).`,
			[]string{"state"}, labels),
		oldest: prometheus.NewDesc("vrpc_client_oldest_waiting_seconds",
			"Age of the oldest call in progress in each state (since the call started); 0 when there is none.",
			[]string{"state"}, labels),
	}
}

func (w *waitingCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- w.calls
	ch <- w.oldest
}

func (w *waitingCollector) Collect(ch chan<- prometheus.Metric) {
	n := w.c.Waiting()
	ch <- prometheus.MustNewConstMetric(w.calls, prometheus.GaugeValue, float64(n.Publishing), statePublishing)
	ch <- prometheus.MustNewConstMetric(w.calls, prometheus.GaugeValue, float64(n.AwaitingReply), stateAwaitingReply)
	ch <- prometheus.MustNewConstMetric(w.oldest, prometheus.GaugeValue, n.OldestPublishing.Seconds(), statePublishing)
	ch <- prometheus.MustNewConstMetric(w.oldest, prometheus.GaugeValue, n.OldestAwaitingReply.Seconds(), stateAwaitingReply)
}
