package mqtt

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/eclipse/paho.golang/paho"

	"github.com/nextpkg/vrpc/rpcbus"
)

const (
	// maxReceiveMaximum is the largest Receive Maximum MQTT can say.
	maxReceiveMaximum = 65535
)

// Subscribe joins opts.Group on each of opts.Topics: a shared subscription
// $share/<group>/<topic> with QoS 1, on a connection and persistent session
// of the subscription's own (a random client id). It returns once the
// broker has acknowledged the subscriptions (or ctx is done): a message
// published afterwards reaches the group.
//
// h is called from one goroutine per subscription, in the order messages
// arrive, and must return quickly; Close waits for it (so h must not call
// Close). At most opts.MaxInFlight deliveries (default 1024) are
// unacknowledged at a time, which is also the session's Receive Maximum:
// the broker sends no more until some are acknowledged. A delivery's
// PUBACK is sent when it is acknowledged, in whatever order that happens
// (within a millisecond: PUBACKs share writes).
//
// When the subscription closes, or its process dies, its session (holding
// what it had not acknowledged) is handed to the rest of the group: see
// "Groups" in the package documentation.
func (b *Bus) Subscribe(ctx context.Context, opts rpcbus.SubscribeOptions, h rpcbus.Handler) (rpcbus.Subscription, error) {
	if b.open.Closed() {
		return nil, rpcbus.ErrClosed
	}
	switch {
	case len(opts.Topics) == 0:
		return nil, fmt.Errorf("mqtt: subscribe (group %q): no topics", opts.Group)
	case opts.Group == "":
		return nil, fmt.Errorf("mqtt: subscribe to %q: no group", opts.Topics)
	case strings.ContainsAny(opts.Group, "/+#\x00"):
		return nil, fmt.Errorf("mqtt: subscribe to %q: group %q: '/', '+', '#' and NUL cannot be part of a shared subscription's name", opts.Topics, opts.Group)
	case opts.MaxInFlight < 0:
		return nil, fmt.Errorf("mqtt: subscribe to %q: MaxInFlight %d is negative (zero means %d)", opts.Topics, opts.MaxInFlight, rpcbus.DefaultMaxInFlight)
	case h == nil:
		return nil, fmt.Errorf("mqtt: subscribe to %q: nil handler", opts.Topics)
	}
	maxInFlight := opts.MaxInFlight
	if maxInFlight == 0 {
		maxInFlight = rpcbus.DefaultMaxInFlight
	}
	var filters []string
	for _, t := range opts.Topics {
		mt, err := mqttTopic(t)
		if err != nil {
			return nil, fmt.Errorf("mqtt: subscribe (group %q): %w", opts.Group, err)
		}
		if f := "$share/" + opts.Group + "/" + mt; !contains(filters, f) {
			filters = append(filters, f)
		}
	}

	s := &subscription{
		bus:          b,
		group:        opts.Group,
		topics:       slices.Compact(slices.Sorted(slices.Values(opts.Topics))),
		filters:      filters,
		h:            h,
		id:           b.clientID(),
		markerPrefix: reservedRoot + "/orphans/" + opts.Group + "/",
		slots:        make(chan struct{}, maxInFlight),
		wake:         make(chan struct{}, 1),
		acked:        make(chan struct{}, 1),
		stop:         make(chan struct{}),
		leaving:      make(chan struct{}),
		dispDone:     make(chan struct{}),
		orphans:      map[string]*orphan{},
	}
	s.stopCtx, s.cancelStop = context.WithCancel(context.Background())
	s.handover = encodeMarker(marker{Filters: append(slices.Clip(filters), s.markerPrefix+"+")})
	cfg := s.linkConfig(s.id, true, s.handover, func(c *conn, p *paho.Publish) { s.received(c, nil, p) })
	cfg.onUp = s.ownUp
	go s.dispatch()
	s.own = newLink(b, cfg)
	if !b.open.Add(s, nil) {
		_ = s.Close(expiredContext())
		return nil, rpcbus.ErrClosed
	}
	if _, err := s.own.current(ctx); err != nil {
		_ = s.Close(expiredContext())
		if errors.Is(err, rpcbus.ErrClosed) {
			return nil, rpcbus.ErrClosed
		}
		return nil, fmt.Errorf("mqtt: subscribe to %q as group %q: %w", opts.Topics, opts.Group, err)
	}
	return s, nil
}

// linkConfig is the CONNECT of the session id: persistent, with the
// subscription's Receive Maximum, and a will that hands the session to
// the group if the connection is lost for longer than will_delay.
func (s *subscription) linkConfig(id string, cleanStart bool, handover []byte, onPublish func(*conn, *paho.Publish)) linkConfig {
	o := &s.bus.o
	delay, expiry := seconds(o.WillDelay), seconds(o.SessionExpiry)
	return linkConfig{
		clientID:   id,
		cleanStart: cleanStart,
		expiry:     expiry,
		recvMax:    uint16(min(cap(s.slots), maxReceiveMaximum)),
		will:       &paho.WillMessage{Topic: s.markerPrefix + id, QoS: 1, Retain: true, Payload: handover},
		willProps:  &paho.WillProperties{WillDelayInterval: &delay, MessageExpiry: &expiry},
		onUp:       func(context.Context, *conn, bool) error { return nil },
		onPublish:  onPublish,
	}
}

// queued is a delivery waiting for the handler.
type queued struct {
	d *rpcbus.Delivery
	c *conn     // the connection it came on, which acknowledges it
	a *adoption // nil for the subscription's own session
}

// subscription is a member of one group: its own session, and the sessions
// of departed members it is adopting.
type subscription struct {
	bus          *Bus
	group        string
	topics       []string // sorted, for Status
	filters      []string // $share/<group>/<topic>
	h            rpcbus.Handler
	id           string // the own session's client id
	markerPrefix string // vrpc~/orphans/<group>/
	handover     []byte // the own session's marker
	own          *link

	slots   chan struct{} // MaxInFlight: one token per unacknowledged delivery
	unacked atomic.Int64  // handed to h, not acknowledged
	acked   chan struct{} // an acknowledgement; for Close

	qmu   sync.Mutex
	queue []queued
	head  int
	wake  chan struct{} // something queued

	// gate orders acknowledgements before the hand-over of a session:
	// they hold it shared; setting gaveBack holds it exclusively.
	gate     sync.RWMutex
	gaveBack bool

	stop       chan struct{} // closed by Close: hand out nothing more
	stopCtx    context.Context
	cancelStop context.CancelFunc
	leaving    chan struct{} // closed by Close once acknowledgements are done
	dispDone   chan struct{}
	wg         sync.WaitGroup // adoption goroutines

	mu      sync.Mutex
	closing bool
	orphans map[string]*orphan // departed members' sessions, by client id
}

// ownUp subscribes the own session: the group's topics, and the markers of
// departed members (their retained markers come only when the
// subscription is new). After a reconnection it also clears the own
// marker, which the will may have published while the connection was down.
func (s *subscription) ownUp(ctx context.Context, c *conn, first bool) error {
	subs := make([]paho.SubscribeOptions, 0, len(s.filters)+1)
	for _, f := range s.filters {
		subs = append(subs, paho.SubscribeOptions{Topic: f, QoS: 1})
	}
	subs = append(subs, paho.SubscribeOptions{Topic: s.markerPrefix + "+", QoS: 1, NoLocal: true, RetainHandling: 1})
	if err := c.subscribe(ctx, subs); err != nil {
		return err
	}
	if !first {
		if _, err := c.publish(ctx, &paho.Publish{QoS: 1, Retain: true, Topic: s.markerPrefix + s.id}); err != nil {
			return fmt.Errorf("clearing the own marker: %w", err)
		}
	}
	return nil
}

// received is the onPublish of the own session (a nil) and of adopted ones.
func (s *subscription) received(c *conn, a *adoption, p *paho.Publish) {
	if strings.HasPrefix(p.Topic, reservedRoot+"/") {
		if p.QoS > 0 {
			c.ack(p.PacketID)
		}
		switch {
		case a == nil && strings.HasPrefix(p.Topic, s.markerPrefix):
			s.onMarker(p.Topic[len(s.markerPrefix):], p.Payload)
		case a != nil && p.Topic == a.sentinel:
			a.sentinelSeen()
		}
		return
	}
	m := toMessage(p, topicName(p.Topic))
	id, qos := p.PacketID, p.QoS
	d := rpcbus.NewDelivery(m, func() { s.ack(c, a, id, qos) })
	if a != nil {
		a.pending.Add(1)
	}
	s.qmu.Lock()
	s.queue = append(s.queue, queued{d: d, c: c, a: a})
	s.qmu.Unlock()
	signal(s.wake)
}

// pop takes the oldest queued delivery. Those that came on a connection
// that has since dropped are skipped: the broker sends them again when the
// session resumes, to this member or to the one that adopts it.
func (s *subscription) pop() (queued, bool) {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	for s.head < len(s.queue) {
		q := s.queue[s.head]
		s.queue[s.head] = queued{}
		s.head++
		if s.head == len(s.queue) {
			s.queue, s.head = s.queue[:0], 0
		} else if s.head > 1024 && s.head > len(s.queue)/2 {
			n := copy(s.queue, s.queue[s.head:])
			clear(s.queue[n:])
			s.queue, s.head = s.queue[:n], 0
		}
		if q.c.alive() {
			return q, true
		}
		if q.a != nil {
			q.a.release()
		}
	}
	return queued{}, false
}

// dispatch hands queued deliveries to the handler, at most MaxInFlight
// unacknowledged at a time.
func (s *subscription) dispatch() {
	defer close(s.dispDone)
	for {
		q, ok := s.pop()
		if !ok {
			select {
			case <-s.wake:
				continue
			case <-s.stop:
				return
			}
		}
		select {
		case s.slots <- struct{}{}:
		case <-s.stop:
			return // q stays unacknowledged in its session
		}
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			<-s.slots
			return
		}
		s.unacked.Add(1)
		s.mu.Unlock()
		s.h(q.d)
	}
}

// ack is Delivery.Ack: it sends the PUBACK unless the session has been
// handed over (then the acknowledgement comes too late: another member
// receives the message again), and makes room for the next delivery.
func (s *subscription) ack(c *conn, a *adoption, id uint16, qos byte) {
	s.gate.RLock()
	if qos > 0 && !s.gaveBack && (a == nil || !a.gaveBack) {
		c.ack(id)
	}
	s.gate.RUnlock()
	if a != nil {
		a.release()
	}
	s.unacked.Add(-1)
	<-s.slots
	signal(s.acked)
}

// Close stops delivering (once it returns, the handler is never called
// again), waits until every delivery handed out has been acknowledged or
// ctx is done, and leaves the group: it publishes the session's marker and
// disconnects, keeping the session, which another member of the group then
// adopts with whatever it had not acknowledged (see "Groups" in the package
// documentation). Acknowledgements after Close do nothing. If deliveries
// were left unacknowledged the error wraps rpcbus.ErrUnacknowledged and ctx.Err().
// Later calls return rpcbus.ErrClosed.
func (s *subscription) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return fmt.Errorf("mqtt: close subscription (group %q): %w", s.group, rpcbus.ErrClosed)
	}
	s.closing = true
	s.mu.Unlock()
	s.bus.open.Remove(s)
	close(s.stop)
	s.cancelStop()
	select {
	case <-s.dispDone:
	case <-ctx.Done():
	}
wait:
	for s.unacked.Load() > 0 {
		select {
		case <-s.acked:
		case <-ctx.Done():
			break wait
		}
	}
	s.gate.Lock()
	s.gaveBack = true
	unacked := s.unacked.Load()
	s.gate.Unlock()
	close(s.leaving)
	s.wg.Wait()

	lctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	s.own.leave(lctx, s.handOver, nil)
	if unacked > 0 {
		return fmt.Errorf("mqtt: close subscription (group %q): %d deliveries unacknowledged, left to the group: %w: %w",
			s.group, unacked, rpcbus.ErrUnacknowledged, ctx.Err())
	}
	return nil
}

// handOver publishes the own session's marker, retained, for the rest of
// the group to adopt it; leave then disconnects, keeping the session.
func (s *subscription) handOver(ctx context.Context, c *conn) {
	expiry := seconds(s.bus.o.SessionExpiry)
	_, err := c.publish(ctx, &paho.Publish{
		QoS: 1, Retain: true, Topic: s.markerPrefix + s.id, Payload: s.handover,
		Properties: &paho.PublishProperties{MessageExpiry: &expiry},
	})
	if err != nil {
		// The will says the same once will_delay has passed.
		c.drop()
	}
}

// CloseNow is Close for Bus.Close (closeset.Closer): it does not wait for
// acknowledgements.
func (s *subscription) CloseNow() { _ = s.Close(expiredContext()) }

func expiredContext() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
