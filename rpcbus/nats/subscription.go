package nats

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/nextpkg/vrpc/rpcbus"
)

const (
	// pullExpires is how long a pull request waits on the server for
	// messages. An idle member renews it this often; a request lost
	// without its timeout status is noticed after pullExpires+pullGrace.
	pullExpires = 10 * time.Second
	pullGrace   = 2 * time.Second
	// pullHeartbeat is the idle heartbeat of pull requests. The server
	// checks its waiting pull requests at each heartbeat and drops those
	// whose subscriber has gone. Until then, NATS 2.9 can hand a
	// redelivered message to such a request, where it is lost until
	// ack_wait; so a closing member waits two heartbeats after
	// unsubscribing before it gives its deliveries back.
	pullHeartbeat = 250 * time.Millisecond
	// pullRetry is how long a member waits before pulling again from a
	// consumer that refused a pull (deleted, or the server restarting).
	pullRetry = time.Second
	// privateInactive removes the consumer of a private group whose
	// process died without closing it.
	privateInactive = time.Minute
)

// JetStream acknowledgement bodies.
var (
	ackBody = []byte("+ACK")
	nakBody = []byte("-NAK")
	wpiBody = []byte("+WPI") // in progress: restarts ack_wait
)

// Subscribe makes the subscription a member of opts.Group on each topic:
// the group is a durable pull consumer of the topic's stream, created if
// missing along with the stream. It returns once the consumers exist, so a
// message published afterwards reaches the group. An empty Group gives the
// subscription a consumer of its own, deleted when it closes.
//
// Deliveries come from the subscription's own goroutine, one at a time and
// in stream order per topic (redeliveries aside). At most MaxInFlight are
// handed out and not yet acknowledged: the member pulls only as many
// messages as it has room for.
func (b *Bus) Subscribe(ctx context.Context, opts rpcbus.SubscribeOptions, h rpcbus.Handler) (rpcbus.Subscription, error) {
	switch {
	case h == nil:
		return nil, fmt.Errorf("nats: subscribe to %q: nil handler", opts.Topics)
	case len(opts.Topics) == 0:
		return nil, fmt.Errorf("nats: subscribe (group %q): no topics", opts.Group)
	case opts.MaxInFlight < 0:
		return nil, fmt.Errorf("nats: subscribe to %q: MaxInFlight %d is negative (zero means %d)", opts.Topics, opts.MaxInFlight, rpcbus.DefaultMaxInFlight)
	}
	var topics []string
	for _, t := range opts.Topics {
		if err := checkTopic(t); err != nil {
			return nil, fmt.Errorf("nats: subscribe: %w", err)
		}
		if !slices.Contains(topics, t) {
			topics = append(topics, t)
		}
	}
	if b.open.Closed() {
		return nil, fmt.Errorf("nats: subscribe to %q: %w", topics, rpcbus.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("nats: subscribe to %q: %w", topics, err)
	}
	s := &subscription{
		bus:      b,
		h:        h,
		group:    opts.Group,
		max:      opts.MaxInFlight,
		byTopic:  make(map[string]*target, len(topics)),
		inflight: make(map[*flight]struct{}),
		wake:     make(chan struct{}, 1),
		acked:    make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	if s.max == 0 {
		s.max = rpcbus.DefaultMaxInFlight
	}
	s.inbox = b.nc.NewInbox()
	consumer := consumerName(opts.Group)
	if opts.Group == "" {
		consumer = "vrpc_private_" + nuid.Next()
	}
	for i, topic := range topics {
		if err := b.join(ctx, topic, opts.Group, consumer, opts.NewGroupMaxAge); err != nil {
			s.deletePrivate()
			return nil, b.notConnected(err)
		}
		stream := streamName(topic)
		t := &target{
			topic:    topic,
			stream:   stream,
			consumer: consumer,
			next:     "$JS.API.CONSUMER.MSG.NEXT." + stream + "." + consumer,
			reply:    s.inbox + "." + strconv.Itoa(i) + ".",
		}
		s.targets = append(s.targets, t)
		s.byTopic[topic] = t
	}

	sub, err := b.nc.Subscribe(s.inbox+".>", s.onMsg)
	if err != nil {
		s.deletePrivate()
		return nil, fmt.Errorf("nats: subscribe to %q: %w", topics, b.connErr(err))
	}
	// What arrives is bounded by what the member pulled, not by nats.go's
	// pending limits, which would drop large messages.
	_ = sub.SetPendingLimits(-1, -1)
	s.sub = sub
	if !b.add(s) {
		_ = sub.Unsubscribe()
		s.deletePrivate()
		return nil, fmt.Errorf("nats: subscribe to %q: %w", topics, rpcbus.ErrClosed)
	}
	go s.run()
	return s, nil
}

// join makes consumer the consumer of group on topic's stream, creating
// both if missing. A named group takes over from the keeper. A consumer
// created with maxAge delivers from the messages stored since maxAge ago;
// an existing one keeps where it started.
func (b *Bus) join(ctx context.Context, topic, group, consumer string, maxAge time.Duration) error {
	if err := b.ensureStream(ctx, topic); err != nil {
		return err
	}
	stream := streamName(topic)
	cfg := jetstream.ConsumerConfig{
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       time.Duration(b.o.AckWait),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxDeliver:    -1,
		// Each member bounds its own deliveries (MaxInFlight) by pulling
		// no more than it has room for; a bound for the whole group would
		// let one stuck member stall the others until ack_wait.
		MaxAckPending: -1,
	}
	if group != "" {
		cfg.Durable = consumer
		cfg.Description = fmt.Sprintf("vRPC group %q on topic %q", group, topic)
	} else {
		cfg.Name = consumer
		cfg.Description = fmt.Sprintf("vRPC private subscription on topic %q", topic)
		cfg.InactiveThreshold = privateInactive
	}
	if err := b.startPolicy(ctx, stream, consumer, maxAge, &cfg); err != nil {
		return fmt.Errorf("nats: subscribe to %q as group %q: reading consumer %s on stream %s: %w",
			topic, group, consumer, stream, b.jsErr(err))
	}
	_, err := b.js.CreateOrUpdateConsumer(ctx, stream, cfg)
	if err != nil {
		// Another member created it in between, from its own start time,
		// which an update may not change: take that one.
		if err := b.startPolicy(ctx, stream, consumer, maxAge, &cfg); err == nil {
			_, err = b.js.CreateOrUpdateConsumer(ctx, stream, cfg)
		}
	}
	if err != nil {
		return fmt.Errorf("nats: subscribe to %q as group %q: creating consumer %s on stream %s: %w",
			topic, group, consumer, stream, b.jsErr(err))
	}
	if group != "" {
		err := b.js.DeleteConsumer(ctx, stream, keeperName)
		if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return fmt.Errorf("nats: subscribe to %q: removing the keeper of stream %s: %w", topic, stream, b.jsErr(err))
		}
	}
	return nil
}

// startPolicy sets cfg to deliver from the messages stored since maxAge
// ago (if positive) if consumer does not exist yet, and to the start it
// was created with if it does, whatever maxAge: JetStream refuses to
// change a consumer's deliver policy, and members of one group may differ.
func (b *Bus) startPolicy(ctx context.Context, stream, consumer string, maxAge time.Duration, cfg *jetstream.ConsumerConfig) error {
	c, err := b.js.Consumer(ctx, stream, consumer)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		if maxAge <= 0 {
			return nil
		}
		start := time.Now().Add(-maxAge)
		cfg.DeliverPolicy, cfg.OptStartTime, cfg.OptStartSeq = jetstream.DeliverByStartTimePolicy, &start, 0
		return nil
	case err != nil:
		return err
	}
	had := c.CachedInfo().Config
	cfg.DeliverPolicy, cfg.OptStartTime, cfg.OptStartSeq = had.DeliverPolicy, had.OptStartTime, had.OptStartSeq
	return nil
}

// target is one topic of a subscription: the group's consumer on the
// topic's stream, and the pull request the member has open on it.
type target struct {
	topic, stream, consumer string
	next                    string // the consumer's pull request subject
	reply                   string // prefix of the reply subjects of its pull requests

	// Guarded by subscription.mu. A target has at most one pull request
	// open: remaining is how many messages it may still bring.
	open      bool
	remaining int
	req       uint64 // numbers pull requests, to tell a late status from the current one
	expires   time.Time
	retryAt   time.Time
}

// flight is a delivery handed to the handler and not yet acknowledged.
type flight struct {
	reply   string    // the message's acknowledgement subject
	touched time.Time // when ack_wait last restarted
}

// pending is a message received and not yet handed to the handler.
type pending struct {
	msg *natsgo.Msg
	at  time.Time
}

// subscription is a member of one group on each of its topics.
type subscription struct {
	bus     *Bus
	h       rpcbus.Handler
	group   string
	max     int
	inbox   string // pull requests are answered on inbox.<target>.<request>
	targets []*target
	byTopic map[string]*target
	sub     *natsgo.Subscription

	mu       sync.Mutex
	queue    []pending
	inflight map[*flight]struct{}
	closing  bool
	drained  bool // Close has taken the queue
	rr       int  // the target to pull for first, for fairness

	wake  chan struct{} // something to deliver, or room to pull
	acked chan struct{} // a delivery was acknowledged; for Close
	stop  chan struct{} // closed by Close
	done  chan struct{} // closed when run returns
}

// onMsg receives everything the server sends for the member's pull
// requests, on nats.go's goroutine of the core subscription.
func (s *subscription) onMsg(m *natsgo.Msg) {
	if m.Reply == "" { // a status of a pull request; deliveries have an ack subject
		s.onStatus(m)
		return
	}
	// While closing too: Close gives the queue back (not at once: see
	// pullHeartbeat). Only a message that nats.go handed over after Close
	// took the queue goes back from here.
	s.mu.Lock()
	if s.drained {
		s.mu.Unlock()
		_ = s.bus.nc.Publish(m.Reply, nakBody)
		return
	}
	if t := s.byTopic[m.Subject]; t != nil && t.remaining > 0 {
		t.remaining--
		t.open = t.remaining > 0
	}
	s.queue = append(s.queue, pending{msg: m, at: time.Now()})
	s.mu.Unlock()
	signal(s.wake)
}

// onStatus handles the end of a pull request: 408 when it expired, 409
// when the server ended it (consumer deleted, leadership change), 503 when
// nobody answered it. 100 is an idle heartbeat.
func (s *subscription) onStatus(m *natsgo.Msg) {
	code := m.Header.Get("Status")
	if code == "100" {
		return
	}
	idx, reqStr, ok := strings.Cut(strings.TrimPrefix(m.Subject, s.inbox+"."), ".")
	i, err1 := strconv.Atoi(idx)
	req, err2 := strconv.ParseUint(reqStr, 10, 64)
	if !ok || err1 != nil || err2 != nil || i < 0 || i >= len(s.targets) {
		return
	}
	t := s.targets[i]
	s.mu.Lock()
	if t.req == req && t.open {
		t.open, t.remaining = false, 0
		if code != "408" {
			t.retryAt = time.Now().Add(pullRetry)
		}
	}
	s.mu.Unlock()
	signal(s.wake)
}

func (s *subscription) run() {
	defer s.bus.wg.Done()
	defer close(s.done)
	tick := min(time.Second, time.Duration(s.bus.o.AckWait)/4)
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	for {
		s.dispatch()
		s.pull()
		select {
		case <-s.stop:
			return
		case <-s.wake:
		case <-ticker.C:
			s.maintain()
		}
	}
}

// dispatch hands queued messages to the handler while there is room.
func (s *subscription) dispatch() {
	for {
		s.mu.Lock()
		if s.closing || len(s.queue) == 0 || len(s.inflight) >= s.max {
			s.mu.Unlock()
			return
		}
		p := s.queue[0]
		s.queue[0] = pending{}
		s.queue = s.queue[1:]
		if len(s.queue) == 0 {
			s.queue = s.queue[:0:0] // let the backing array go
		}
		f := &flight{reply: p.msg.Reply, touched: p.at}
		s.inflight[f] = struct{}{}
		s.mu.Unlock()
		s.h(rpcbus.NewDelivery(toMessage(p.msg), func() { s.ack(f) }))
	}
}

// pull opens a pull request on each target that has none, for as many
// messages as the member has room for, shared among its targets.
func (s *subscription) pull() {
	if !s.bus.nc.IsConnected() {
		return // reconnected calls reset and wakes us
	}
	type request struct {
		t     *target
		req   uint64
		batch int
	}
	var reqs []request
	now := time.Now()
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	free := s.max - len(s.inflight) - len(s.queue)
	for _, t := range s.targets {
		if t.open {
			free -= t.remaining
		}
	}
	share := max(1, s.max/len(s.targets))
	for i := range s.targets {
		if free <= 0 {
			break
		}
		t := s.targets[(s.rr+i)%len(s.targets)]
		if t.open || now.Before(t.retryAt) {
			continue
		}
		batch := min(free, share)
		free -= batch
		t.req++
		t.open, t.remaining, t.expires = true, batch, now.Add(pullExpires)
		reqs = append(reqs, request{t, t.req, batch})
	}
	s.rr++
	s.mu.Unlock()
	for _, r := range reqs {
		body := make([]byte, 0, 80)
		body = append(body, `{"batch":`...)
		body = strconv.AppendInt(body, int64(r.batch), 10)
		body = append(body, `,"expires":`...)
		body = strconv.AppendInt(body, int64(pullExpires), 10)
		body = append(body, `,"idle_heartbeat":`...)
		body = strconv.AppendInt(body, int64(pullHeartbeat), 10)
		body = append(body, '}')
		subject := r.t.reply + strconv.FormatUint(r.req, 10)
		if err := s.bus.nc.PublishRequest(r.t.next, subject, body); err != nil {
			s.mu.Lock()
			if r.t.req == r.req {
				r.t.open, r.t.remaining, r.t.retryAt = false, 0, time.Now().Add(pullRetry)
			}
			s.mu.Unlock()
		}
	}
}

// maintain forgets pull requests whose end the server never reported,
// and tells the server that deliveries held longer than a third of
// ack_wait are still being worked on, so that a live member never has its
// deliveries given to another.
func (s *subscription) maintain() {
	now := time.Now()
	s.mu.Lock()
	for _, t := range s.targets {
		if t.open && now.After(t.expires.Add(pullGrace)) {
			t.open, t.remaining = false, 0
		}
	}
	s.mu.Unlock()
	s.touch(now)
}

// touch sends in-progress signals for the deliveries, handed out or
// queued, that have been held for a third of ack_wait.
func (s *subscription) touch(now time.Time) {
	limit := time.Duration(s.bus.o.AckWait) / 3
	var replies []string
	s.mu.Lock()
	for f := range s.inflight {
		if now.Sub(f.touched) >= limit {
			f.touched = now
			replies = append(replies, f.reply)
		}
	}
	for i := range s.queue {
		if p := &s.queue[i]; now.Sub(p.at) >= limit {
			p.at = now
			replies = append(replies, p.msg.Reply)
		}
	}
	s.mu.Unlock()
	for _, r := range replies {
		_ = s.bus.nc.Publish(r, wpiBody)
	}
}

// reset forgets the pull requests a lost connection took with it and
// pulls again.
func (s *subscription) reset() {
	s.mu.Lock()
	for _, t := range s.targets {
		t.open, t.remaining = false, 0
		t.req++ // a late status of the old request is not about the new one
		t.retryAt = time.Time{}
	}
	s.mu.Unlock()
	signal(s.wake)
}

// ack acknowledges f, unless Close already gave it back to the group:
// then another member has it, and only its acknowledgement counts. The
// reply to a request is published on the same connection before this, so
// the server sees the reply before the acknowledgement.
func (s *subscription) ack(f *flight) {
	s.mu.Lock()
	_, ok := s.inflight[f]
	delete(s.inflight, f)
	s.mu.Unlock()
	if ok {
		_ = s.bus.nc.Publish(f.reply, ackBody)
		signal(s.wake)
		signal(s.acked)
	}
}

// Close stops delivering, waits until the handler has returned and every
// delivery is acknowledged, or ctx is done, then leaves the group:
// deliveries still unacknowledged are given back to it (negatively
// acknowledged), so another member receives them at once, and Close
// reports them with an error wrapping rpcbus.ErrUnacknowledged and ctx.Err().
// Close must not wait for its own handler: called from the handler, it
// returns when ctx is done. Later calls return rpcbus.ErrClosed.
func (s *subscription) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return fmt.Errorf("nats: close subscription (group %q): %w", s.group, rpcbus.ErrClosed)
	}
	s.closing = true
	s.mu.Unlock()
	s.bus.open.Remove(s)
	return s.shutdown(ctx)
}

// CloseNow closes s for Bus.Close, giving back what it holds at once.
func (s *subscription) CloseNow() {
	s.mu.Lock()
	closing := s.closing
	s.closing = true
	s.mu.Unlock()
	if !closing {
		expired, cancel := context.WithCancel(context.Background())
		cancel()
		_ = s.shutdown(expired)
	}
}

// shutdown does Close's work once s.closing is set.
func (s *subscription) shutdown(ctx context.Context) error {
	close(s.stop)
	// First stop the server sending: drain the core subscription, so that
	// what it sent before is received (queued, as s is closing) rather
	// than left to ack_wait.
	s.drain()
	// The server drops this member's pull requests at its next heartbeat;
	// giving messages back before that can lose them (see pullHeartbeat).
	givable := time.Now().Add(2 * pullHeartbeat)
	giveBack := func(replies []string) {
		if len(replies) == 0 {
			return
		}
		if d := time.Until(givable); d > 0 {
			time.Sleep(d)
		}
		for _, r := range replies {
			_ = s.bus.nc.Publish(r, nakBody)
		}
	}
	// What was received but never handed out goes back now, for another
	// member to handle while this one finishes.
	s.mu.Lock()
	queued := make([]string, 0, len(s.queue))
	for _, p := range s.queue {
		queued = append(queued, p.msg.Reply)
	}
	s.queue, s.drained = nil, true
	s.mu.Unlock()
	giveBack(queued)

	// Wait for the handler to return and for acknowledgements, keeping
	// the deliveries alive meanwhile.
	select {
	case <-s.done:
	case <-ctx.Done():
	}
	ticker := time.NewTicker(min(time.Second, time.Duration(s.bus.o.AckWait)/4))
wait:
	for {
		s.mu.Lock()
		n := len(s.inflight)
		s.mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-s.acked:
		case now := <-ticker.C:
			s.touch(now)
		case <-ctx.Done():
			break wait
		}
	}
	ticker.Stop()

	s.mu.Lock()
	held := make([]string, 0, len(s.inflight))
	for f := range s.inflight {
		held = append(held, f.reply)
	}
	clear(s.inflight)
	s.mu.Unlock()
	giveBack(held)
	s.deletePrivate()
	if len(held) > 0 {
		return fmt.Errorf("nats: close subscription (group %q): %d deliveries given back to the group: %w (%w)",
			s.group, len(held), rpcbus.ErrUnacknowledged, ctx.Err())
	}
	return nil
}

// drain unsubscribes once the server has seen it and everything it sent
// before has been handled, within closeTimeout.
func (s *subscription) drain() {
	closed := s.sub.StatusChanged(natsgo.SubscriptionClosed)
	if err := s.sub.Drain(); err != nil {
		_ = s.sub.Unsubscribe()
		return
	}
	t := time.NewTimer(closeTimeout)
	defer t.Stop()
	select {
	case <-closed:
	case <-t.C:
		_ = s.sub.Unsubscribe()
	}
}

// deletePrivate deletes the consumers of a subscription without a group.
func (s *subscription) deletePrivate() {
	if s.group != "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	for _, t := range s.targets {
		_ = s.bus.js.DeleteConsumer(ctx, t.stream, t.consumer)
	}
}

// signal wakes the goroutine waiting on c without ever blocking; c has
// room for one pending wake-up, which is all a waiter needs.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
