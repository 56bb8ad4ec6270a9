package memory

import (
	"context"
	"fmt"
	"maps"
	"sync/atomic"
	"time"

	"github.com/nextpkg/vrpc/rpcbus"
)

// privateGroups numbers the groups of subscriptions without a Group.
var privateGroups atomic.Uint64

// Subscribe joins opts.Group on each of opts.Topics, creating missing
// topics, and starts one goroutine that calls h for each delivery, in
// order. It returns once the subscription is registered: a message
// published afterwards reaches the group. An empty Group gives the
// subscription a private group of its own, removed when it closes.
func (b *Bus) Subscribe(ctx context.Context, opts rpcbus.SubscribeOptions, h rpcbus.Handler) (rpcbus.Subscription, error) {
	if h == nil {
		return nil, fmt.Errorf("memory: subscribe to %q: nil handler", opts.Topics)
	}
	if len(opts.Topics) == 0 {
		return nil, fmt.Errorf("memory: subscribe (group %q): no topics", opts.Group)
	}
	for _, name := range opts.Topics {
		if name == "" {
			return nil, fmt.Errorf("memory: subscribe to %q: empty topic name", opts.Topics)
		}
	}
	if opts.MaxInFlight < 0 {
		return nil, fmt.Errorf("memory: subscribe to %q: MaxInFlight %d is negative (zero means %d)", opts.Topics, opts.MaxInFlight, rpcbus.DefaultMaxInFlight)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memory: subscribe to %q: %w", opts.Topics, err)
	}
	s := &subscription{
		bus:      b,
		h:        h,
		group:    opts.Group,
		max:      opts.MaxInFlight,
		inflight: map[flight]struct{}{},
		wake:     make(chan struct{}, 1),
		acked:    make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	if s.max == 0 {
		s.max = rpcbus.DefaultMaxInFlight
	}
	key, private := opts.Group, opts.Group == ""
	if private {
		// A NUL cannot come from YAML, so no named group collides.
		key = fmt.Sprintf("\x00private-%d", privateGroups.Add(1))
	}

	br := b.br
	br.mu.Lock()
	defer br.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("memory: subscribe to %q: %w", opts.Topics, rpcbus.ErrClosed)
	}
	var since int64
	if opts.NewGroupMaxAge > 0 {
		since = time.Now().Add(-opts.NewGroupMaxAge).UnixNano()
	}
	for _, name := range opts.Topics {
		g := br.topic(name).group(key, private, since)
		if !containsMember(g, s) { // the same topic twice
			g.members = append(g.members, s)
			s.groups = append(s.groups, g)
		}
	}
	b.subs[s] = struct{}{}
	b.wg.Add(1)
	go s.run()
	signal(s.wake) // serve what the group has waiting
	return s, nil
}

func containsMember(g *group, s *subscription) bool {
	for _, m := range g.members {
		if m == s {
			return true
		}
	}
	return false
}

// flight is a delivery handed to a subscription and not yet acknowledged.
type flight struct {
	g   *group
	off int64
}

// subscription is a member of one group on each of its topics.
type subscription struct {
	bus   *Bus
	h     rpcbus.Handler
	group string
	max   int

	// Guarded by broker.mu.
	groups   []*group // one per topic
	rr       int      // the topic to look at first, for fairness
	inflight map[flight]struct{}
	closing  bool

	wake  chan struct{} // something to deliver, or room to deliver it
	acked chan struct{} // a delivery was acknowledged; for Close
	stop  chan struct{} // closed by Close
	done  chan struct{} // closed when run returns
}

func (s *subscription) run() {
	defer s.bus.wg.Done()
	defer close(s.done)
	for {
		select {
		case <-s.stop:
			return
		case <-s.wake:
		}
		for d := s.claim(); d != nil; d = s.claim() {
			s.h(d)
		}
	}
}

// claim takes the next delivery for s from one of its groups, or returns
// nil when there is none, s has MaxInFlight unacknowledged, or s is
// closing.
func (s *subscription) claim() *rpcbus.Delivery {
	br := s.bus.br
	br.mu.Lock()
	defer br.mu.Unlock()
	if s.closing || len(s.inflight) >= s.max {
		return nil
	}
	n := len(s.groups)
	for i := range n {
		g := s.groups[(s.rr+i)%n]
		off, ok := g.take()
		if !ok {
			continue
		}
		s.rr = (s.rr + i + 1) % n
		f := flight{g: g, off: off}
		s.inflight[f] = struct{}{}
		rec := g.t.at(off)
		m := rpcbus.Message{Topic: g.t.name, Key: rec.key, Value: rec.value, Headers: maps.Clone(rec.headers)}
		return rpcbus.NewDelivery(m, func() { s.ack(f) })
	}
	return nil
}

// ack commits f for its group, unless f was already given back when s
// closed: then another member has it and its acknowledgement counts.
func (s *subscription) ack(f flight) {
	br := s.bus.br
	br.mu.Lock()
	_, ok := s.inflight[f]
	if ok {
		delete(s.inflight, f)
		f.g.commit(f.off)
		f.g.t.trim()
	}
	br.mu.Unlock()
	if ok {
		signal(s.wake)
		signal(s.acked)
	}
}

// Close stops delivering, waits until the handler has returned and every
// delivery is acknowledged, or ctx is done, and leaves the group.
// Deliveries still unacknowledged then go to another member of the group;
// Close reports them with an error wrapping rpcbus.ErrUnacknowledged and
// ctx.Err(). Close must not wait
// for its own handler: called from the handler, it returns when ctx is
// done. Later calls return rpcbus.ErrClosed.
func (s *subscription) Close(ctx context.Context) error {
	br := s.bus.br
	br.mu.Lock()
	if s.closing {
		br.mu.Unlock()
		return fmt.Errorf("memory: close subscription (group %q): %w", s.group, rpcbus.ErrClosed)
	}
	s.closing = true
	br.mu.Unlock()
	return s.shutdown(ctx)
}

// shutdown does Close's work once s.closing is set.
func (s *subscription) shutdown(ctx context.Context) error {
	close(s.stop)
	select {
	case <-s.done:
	case <-ctx.Done():
	}
	br := s.bus.br
wait:
	for {
		br.mu.Lock()
		n := len(s.inflight)
		br.mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-s.acked:
		case <-ctx.Done():
			break wait
		}
	}

	br.mu.Lock()
	defer br.mu.Unlock()
	unacked := len(s.inflight)
	back := map[*group][]int64{}
	for f := range s.inflight {
		back[f.g] = append(back[f.g], f.off)
	}
	clear(s.inflight)
	for _, g := range s.groups {
		g.leave(s)
		if g.private {
			g.t.trim() // the group's hold on the log is gone
		} else if offs := back[g]; len(offs) > 0 {
			g.giveBack(offs)
		}
	}
	delete(s.bus.subs, s)
	if unacked > 0 {
		return fmt.Errorf("memory: close subscription (group %q): %d deliveries unacknowledged, given back to the group: %w: %w",
			s.group, unacked, rpcbus.ErrUnacknowledged, ctx.Err())
	}
	return nil
}
