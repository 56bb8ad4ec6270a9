package mqtt

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/nextpkg/vrpc/internal/backoff"
)

// How members of a group share out a departed member's session. See
// "Groups" in the package documentation.
const (
	// adoptJitter spreads the members that learn of an orphaned session at
	// the same moment, so that the first one's claim reaches the others
	// before they claim it too.
	adoptJitter = 50 * time.Millisecond
	// claimTTL is how long a claim keeps the other members off a session;
	// an adopter renews its claim every claimRefresh while it works.
	claimTTL     = 10 * time.Second
	claimRefresh = 3 * time.Second
	// adoptRetry is the pause before trying again to adopt a session when
	// connecting as it failed.
	adoptRetry = time.Second
	// maxOrphans bounds the departed sessions a member keeps track of.
	maxOrphans = 10000
	// maxMarkerBytes and maxMarkerFilters bound what a marker may hold.
	maxMarkerBytes   = 64 << 10
	maxMarkerFilters = 1000
)

// marker is the payload of a message on a group's marker topic
// vrpc~/orphans/<group>/<client id>. Retained, with Filters, it says that
// the session of that client id has been left to the group, with those
// subscriptions; not retained, with Claim, that the member Claim is adopting
// it. An empty payload clears the retained marker: the session is gone.
type marker struct {
	Filters []string `json:"filters,omitempty"`
	Claim   string   `json:"claim,omitempty"`
}

func encodeMarker(m marker) []byte {
	b, err := json.Marshal(m)
	if err != nil {
		panic(err) // strings only
	}
	return b
}

// decodeMarker reads a marker off the bus. An empty payload is the zero
// marker (cleared).
func decodeMarker(b []byte) (marker, error) {
	var m marker
	if len(b) == 0 {
		return m, nil
	}
	if len(b) > maxMarkerBytes {
		return m, fmt.Errorf("marker of %d bytes (at most %d)", len(b), maxMarkerBytes)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("marker: %w", err)
	}
	switch {
	case len(m.Filters) > maxMarkerFilters:
		return m, fmt.Errorf("marker with %d filters (at most %d)", len(m.Filters), maxMarkerFilters)
	case len(m.Filters) > 0 && m.Claim != "":
		return m, errors.New("marker with both filters and a claim")
	case len(m.Filters) == 0 && m.Claim == "":
		return m, errors.New("marker with neither filters nor a claim")
	}
	for _, f := range m.Filters {
		if f == "" || strings.ContainsRune(f, 0) {
			return m, fmt.Errorf("marker filter %q", f)
		}
	}
	return m, nil
}

// orphan is what a member knows of a departed member's session.
type orphan struct {
	filters   []string
	claimedBy string // another member adopting it
	claimedAt time.Time
	tended    bool // a goroutine of this member is on it
}

// onMarker handles a message on the group's marker topic of client id x,
// on the own session's reading goroutine: it must not block.
func (s *subscription) onMarker(x string, payload []byte) {
	if x == "" || x == s.id || strings.ContainsAny(x, "/+#") {
		return
	}
	m, err := decodeMarker(payload)
	if err != nil {
		return // not ours to act on
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return
	}
	o := s.orphans[x]
	switch {
	case len(payload) == 0:
		delete(s.orphans, x)
		return
	case o == nil && len(s.orphans) >= maxOrphans:
		return
	case o == nil:
		o = &orphan{}
		s.orphans[x] = o
	}
	if m.Claim != "" {
		if m.Claim != s.id {
			o.claimedBy, o.claimedAt = m.Claim, time.Now()
		}
		return
	}
	// A new marker: the member left, or an adopter's will says it did
	// not finish. Any claim before it is over.
	o.filters, o.claimedBy = m.Filters, ""
	if !o.tended {
		o.tended = true
		s.wg.Add(1)
		go s.tend(x)
	}
}

// tend adopts the session x once no other member has claimed it, until it
// is adopted (by anyone) or the subscription closes.
func (s *subscription) tend(x string) {
	defer s.wg.Done()
	wait := mrand.N(adoptJitter)
	for {
		if !backoff.Sleep(s.stopCtx, wait) { // Close ends stopCtx
			s.untend(x)
			return
		}
		s.mu.Lock()
		o := s.orphans[x]
		if o == nil || s.closing {
			if o != nil {
				o.tended = false
			}
			s.mu.Unlock()
			return
		}
		if since := time.Since(o.claimedAt); o.claimedBy != "" && since < claimTTL {
			wait = claimTTL - since
			s.mu.Unlock()
			continue
		}
		filters := o.filters
		s.mu.Unlock()
		if s.adopt(x, filters) {
			s.mu.Lock()
			if o := s.orphans[x]; o != nil {
				o.tended = false
			}
			s.mu.Unlock()
			return
		}
		wait = adoptRetry
	}
}

func (s *subscription) untend(x string) {
	s.mu.Lock()
	if o := s.orphans[x]; o != nil {
		o.tended = false
	}
	s.mu.Unlock()
}

// publishOwn publishes on the own session's connection.
func (s *subscription) publishOwn(ctx context.Context, p *paho.Publish) error {
	c, err := s.own.current(ctx)
	if err != nil {
		return err
	}
	_, err = c.publish(ctx, p)
	return err
}

func (s *subscription) claim(ctx context.Context, x string) error {
	return s.publishOwn(ctx, &paho.Publish{QoS: 1, Topic: s.markerPrefix + x, Payload: encodeMarker(marker{Claim: s.id})})
}

// adoption is the adoption of a departed member's session.
type adoption struct {
	s        *subscription
	id       string   // the session's client id
	filters  []string // its subscriptions, to remove
	sentinel string   // a topic of this adoption's own
	c        *conn

	pending  atomic.Int64 // deliveries received, not yet acknowledged
	seen     atomic.Bool  // the sentinel arrived: nothing precedes it
	wake     chan struct{}
	gaveBack bool // guarded by s.gate
}

func (a *adoption) release() {
	if a.pending.Add(-1) == 0 {
		signal(a.wake)
	}
}

func (a *adoption) sentinelSeen() {
	a.seen.Store(true)
	signal(a.wake)
}

func (a *adoption) drained() bool { return a.seen.Load() && a.pending.Load() == 0 }

// adopt takes over the session x: it claims it, connects as x (which
// resumes the session and makes the broker send again what x had not
// acknowledged), removes x's subscriptions, and subscribes a sentinel topic
// and publishes to it; the broker delivers in order, so once the sentinel
// arrives and every delivery before it has been acknowledged, the session
// holds nothing more and is ended. adopt reports false if it should be
// tried again.
func (s *subscription) adopt(x string, filters []string) bool {
	ctx := s.stopCtx
	cctx, cancel := context.WithTimeout(ctx, time.Duration(s.bus.o.ConnectTimeout))
	err := s.claim(cctx, x)
	cancel()
	if err != nil {
		return ctx.Err() != nil
	}
	a := &adoption{s: s, id: x, filters: filters, wake: make(chan struct{}, 1),
		sentinel: reservedRoot + "/sentinel/" + x + "/" + strings.ToLower(rand.Text()[:12])}
	handover := encodeMarker(marker{Filters: filters})
	cfg := s.linkConfig(x, false, handover, func(c *conn, p *paho.Publish) { s.received(c, a, p) })
	c, err := s.bus.dial(ctx, cfg, false)
	if err != nil {
		return ctx.Err() != nil
	}
	a.c = c
	a.run(ctx, handover)
	return true
}

// run drains the adopted session, then ends it; if the subscription closes
// first, it hands the session back to the group.
func (a *adoption) run(ctx context.Context, handover []byte) {
	s, c := a.s, a.c
	if !c.present {
		// Adopted by another member already, or expired: the CONNECT made
		// an empty session. End it, and the marker.
		a.finish()
		return
	}
	if err := a.setUp(ctx); err != nil {
		if ctx.Err() != nil {
			a.handBack(handover)
		} else {
			c.drop() // the will tells the group again
			<-c.dead
		}
		return
	}
	refresh := time.NewTicker(claimRefresh)
	defer refresh.Stop()
	for {
		if a.drained() {
			a.finish()
			return
		}
		select {
		case <-a.wake:
		case <-refresh.C:
			cctx, cancel := context.WithTimeout(ctx, claimRefresh)
			_ = s.claim(cctx, a.id)
			cancel()
		case <-c.dead:
			// Taken over (the member came back, or another adopted it),
			// or the network failed: then the will, after will_delay,
			// tells the group again.
			return
		case <-s.leaving:
			if a.drained() {
				a.finish()
			} else {
				a.handBack(handover)
			}
			return
		}
	}
}

// setUp removes the departed member's subscriptions, so that nothing new
// enters the session, and sends the sentinel after what it holds.
func (a *adoption) setUp(ctx context.Context) error {
	c := a.c
	if len(a.filters) > 0 {
		if err := c.unsubscribe(ctx, a.filters); err != nil {
			return err
		}
	}
	if err := c.subscribe(ctx, []paho.SubscribeOptions{{Topic: a.sentinel, QoS: 1}}); err != nil {
		return err
	}
	if _, err := c.publish(ctx, &paho.Publish{QoS: 1, Topic: a.sentinel}); err != nil {
		return err
	}
	return nil
}

// finish clears the session's marker and ends the session.
func (a *adoption) finish() {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_, _ = a.c.publish(ctx, &paho.Publish{QoS: 1, Retain: true, Topic: a.s.markerPrefix + a.id})
	var zero uint32
	a.c.disconnect(&zero)
	s := a.s
	s.mu.Lock()
	delete(s.orphans, a.id)
	s.mu.Unlock()
}

// handBack leaves the session to the group again, with what is still
// unacknowledged in it: acknowledgements stop, the marker is published
// again (members that saw it before learn of it anew), and the connection
// ends, keeping the session.
func (a *adoption) handBack(handover []byte) {
	s := a.s
	s.gate.Lock()
	a.gaveBack = true
	s.gate.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	expiry := seconds(s.bus.o.SessionExpiry)
	_, err := a.c.publish(ctx, &paho.Publish{
		QoS: 1, Retain: true, Topic: s.markerPrefix + a.id, Payload: handover,
		Properties: &paho.PublishProperties{MessageExpiry: &expiry},
	})
	if err != nil {
		a.c.drop() // the will says it
	}
	a.c.disconnect(nil)
}
