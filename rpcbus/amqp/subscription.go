package amqp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/nextpkg/vrpc/internal/backoff"
	"github.com/nextpkg/vrpc/rpcbus"
)

const (
	// deliveryCountHeader is added by quorum queues to a message delivered
	// again; it is the broker's, not the publisher's, so it is not passed
	// on.
	deliveryCountHeader = "x-delivery-count"
)

// Subscribe declares, for each topic of opts, the durable queue of
// opts.Group on it ("<topic>:<group>", of the queue_type setting) and binds
// it to the bus's exchange with the topic as routing key, then consumes
// from those queues with manual acknowledgement. Every subscription of one
// group, in any process, consumes from the same queues, so the broker gives
// each message to one of them; each group has queues of its own, so every
// group gets every message. Subscribe returns once the consumers are
// registered with the broker, or ctx is done.
//
// h is called from one goroutine per subscription and must return quickly;
// Close waits for it, so h must not call Close. At most opts.MaxInFlight
// deliveries (default 1024) are unacknowledged at a time: the broker's
// prefetch (basic.qos) is MaxInFlight per queue, or the prefetch setting,
// and with several topics the subscription holds back deliveries beyond
// MaxInFlight until acknowledgements make room.
//
// If the connection is lost, the broker gives the unacknowledged messages
// to other consumers (or to this one again); the subscription reconnects
// with backoff, declares its queues again and goes on consuming.
// Acknowledgements of deliveries received before the loss do nothing.
func (b *Bus) Subscribe(ctx context.Context, opts rpcbus.SubscribeOptions, h rpcbus.Handler) (rpcbus.Subscription, error) {
	if b.open.Closed() {
		return nil, rpcbus.ErrClosed
	}
	switch {
	case len(opts.Topics) == 0:
		return nil, errors.New("amqp: subscribe: no topics")
	case opts.Group == "":
		return nil, fmt.Errorf("amqp: subscribe to %q: no group", opts.Topics)
	case opts.MaxInFlight < 0:
		return nil, fmt.Errorf("amqp: subscribe to %q: MaxInFlight %d is negative", opts.Topics, opts.MaxInFlight)
	case h == nil:
		return nil, fmt.Errorf("amqp: subscribe to %q: nil handler", opts.Topics)
	}
	topics := make([]string, 0, len(opts.Topics))
	for _, t := range opts.Topics {
		if t == "" || len(t) > maxNameBytes {
			return nil, fmt.Errorf("amqp: subscribe to %q: a topic is 1 to %d bytes", t, maxNameBytes)
		}
		if !contains(topics, t) {
			topics = append(topics, t)
		}
	}
	maxInFlight := opts.MaxInFlight
	if maxInFlight == 0 {
		maxInFlight = rpcbus.DefaultMaxInFlight
	}
	prefetch := min(maxInFlight, maxPrefetch)
	if b.o.Prefetch > 0 {
		prefetch = b.o.Prefetch
	}
	s := &subscription{
		bus:      b,
		topics:   topics,
		group:    opts.Group,
		h:        h,
		prefetch: prefetch,
		tokens:   make(chan struct{}, maxInFlight),
		stop:     make(chan struct{}),
		finish:   make(chan struct{}),
		done:     make(chan struct{}),
		ready:    make(chan error, 1),
	}
	for _, t := range topics {
		s.queues = append(s.queues, queueName(t, opts.Group))
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if !b.open.Add(s, nil) {
		s.cancel()
		return nil, rpcbus.ErrClosed
	}
	go s.run()
	select {
	case err := <-s.ready:
		if err == nil {
			return s, nil
		}
		s.abandon()
		return nil, s.wrap(err)
	case <-s.done:
		select {
		case err := <-s.ready:
			if err != nil {
				s.abandon()
				return nil, s.wrap(err)
			}
		default:
		}
		return nil, rpcbus.ErrClosed // Bus.Close closed it
	case <-ctx.Done():
		s.abandon()
		s.mu.Lock()
		last := s.lastErr
		s.mu.Unlock()
		if last == nil {
			return nil, s.wrap(ctx.Err())
		}
		return nil, s.wrap(fmt.Errorf("%w (last: %w)", ctx.Err(), last))
	}
}

// subscription consumes the queues of one group on its topics, on a
// channel of the bus's consuming connection, opened again after a loss.
type subscription struct {
	bus      *Bus
	topics   []string
	queues   []string // queues[i] is the group's queue on topics[i]
	group    string
	h        rpcbus.Handler
	prefetch int

	// tokens holds one entry per delivery handed to h and not yet
	// acknowledged: its capacity is MaxInFlight.
	tokens chan struct{}

	hmu     sync.Mutex // held while h runs
	stopped bool       // under hmu: h is called no more

	ctx       context.Context // ends at Close: setup stops waiting
	cancel    context.CancelFunc
	stop      chan struct{} // closed at Close: stop handing out deliveries
	finish    chan struct{} // closed once Close has stopped waiting for acks
	done      chan struct{} // closed when run has returned
	ready     chan error    // the outcome of the first setup
	acksOff   atomic.Bool   // acknowledgements no longer count
	closed    atomic.Bool
	consuming atomic.Bool // a channel consumes the queues now

	mu      sync.Mutex
	lastErr error // of the last failed setup
}

// generation is one channel's consumers.
type generation struct {
	ch         *amqp.Channel
	tags       []string
	raw        []<-chan amqp.Delivery
	deliveries <-chan amqp.Delivery // raw[0], or raw merged
	broken     chan struct{}        // closed when a merged consumer ends
	stopFwd    chan struct{}
	fwd        sync.WaitGroup
}

func (s *subscription) wrap(err error) error {
	if errors.Is(err, rpcbus.ErrClosed) {
		return rpcbus.ErrClosed
	}
	return fmt.Errorf("amqp: subscribe to %q as group %q: %w", s.topics, s.group, err)
}

func (s *subscription) run() {
	defer close(s.done)
	s.bus.consumeLoop(s.ctx, fmt.Sprintf("group %s on %v", s.group, s.topics), s.ready, s.failed, func() (func() bool, error) {
		g, err := s.setup()
		if err != nil {
			return nil, err
		}
		return func() bool {
			s.consuming.Store(true)
			stopped := s.dispatch(g)
			s.consuming.Store(false)
			if stopped {
				s.teardown(g)
				return true
			}
			g.stopForwarders()
			_ = g.ch.Close()
			return false
		}, nil
	})
}

func (s *subscription) failed(err error) {
	s.mu.Lock()
	s.lastErr = err
	s.mu.Unlock()
}

// consumeLoop is the life of an inbox or a subscription: start sets up its
// consumer and returns the function that serves it until it breaks
// (reporting whether it was stopped); a setup that fails is tried again
// with backoff, up to reconnect_backoff. The first outcome goes to ready: a
// permanent error ends the loop there. It returns once serve reports a
// stop, or ctx (which Close ends) is done while it backs off.
func (b *Bus) consumeLoop(ctx context.Context, what string, ready chan<- error, failed func(error), start func() (serve func() bool, err error)) {
	first := true
	bo := b.sub.backoff()
	for {
		serve, err := start()
		if err != nil {
			failed(err)
			if first && permanent(err) {
				if r := refusal(err, b.sub.o); r != nil {
					err = r
				}
				ready <- err
				return
			}
			if !first {
				slog.Error(fmt.Sprintf("rpc_bus amqp: %s: consuming again: %v", what, err))
			}
			if !bo.Wait(ctx) {
				return
			}
			continue
		}
		if first {
			ready <- nil
			first = false
		}
		bo.Reset()
		if serve() {
			return
		}
	}
}

// setup opens a channel, declares and binds the queues and starts
// consuming them.
func (s *subscription) setup() (*generation, error) {
	conn, err := s.bus.sub.get(s.ctx)
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	fail := func(what string, err error) (*generation, error) {
		_ = ch.Close()
		return nil, fmt.Errorf("%s: %w%s", what, err, hint(err))
	}
	if err := ch.Qos(s.prefetch, 0, false); err != nil {
		return fail("setting the prefetch", err)
	}
	if err := s.bus.declareExchange(ch); err != nil {
		return nil, err
	}
	args := s.bus.o.queueArgs()
	for i, q := range s.queues {
		if _, err := ch.QueueDeclare(q, true, false, false, false, args); err != nil {
			return fail(fmt.Sprintf("declaring queue %q", q), err)
		}
		if f := s.bus.onDeclare; f != nil {
			f(q)
		}
		if err := ch.QueueBind(q, s.topics[i], s.bus.o.Exchange, false, nil); err != nil {
			return fail(fmt.Sprintf("binding queue %q to exchange %q with key %q", q, s.bus.o.Exchange, s.topics[i]), err)
		}
	}
	g := &generation{ch: ch}
	for i, q := range s.queues {
		tag := "vrpc-" + strconv.Itoa(i)
		d, err := ch.Consume(q, tag, false, false, false, false, nil)
		if err != nil {
			return fail(fmt.Sprintf("consuming queue %q", q), err)
		}
		g.tags = append(g.tags, tag)
		g.raw = append(g.raw, d)
	}
	g.merge()
	return g, nil
}

// hint says what to do about a declaration the broker refused.
func hint(err error) string {
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Code == amqp.PreconditionFailed && strings.Contains(ae.Reason, "x-queue-type") {
		return " (the queue exists with another type: set rpc_bus.settings.queue_type to match it, or delete the queue)"
	}
	if errors.As(err, &ae) && ae.Code == amqp.PreconditionFailed && strings.Contains(ae.Reason, "x-expires") {
		return " (the queue exists with another queue_expires: set rpc_bus.settings.queue_expires to match it, or delete the queue)"
	}
	return ""
}

// merge sets g.deliveries: the one consumer's channel, or, with several
// topics, a channel that forwarders fill from all of them.
func (g *generation) merge() {
	if len(g.raw) == 1 {
		g.deliveries = g.raw[0]
		return
	}
	merged := make(chan amqp.Delivery)
	g.deliveries = merged
	g.broken = make(chan struct{})
	g.stopFwd = make(chan struct{})
	var once sync.Once
	for _, c := range g.raw {
		g.fwd.Go(func() {
			for {
				select {
				case d, ok := <-c:
					if !ok {
						once.Do(func() { close(g.broken) })
						return
					}
					select {
					case merged <- d:
					case <-g.stopFwd:
						return // d is requeued when the channel closes
					}
				case <-g.stopFwd:
					return
				}
			}
		})
	}
}

func (g *generation) stopForwarders() {
	if g.stopFwd != nil {
		close(g.stopFwd)
		g.fwd.Wait()
		g.stopFwd = nil
	}
}

// dispatch hands deliveries to the handler until Close (true) or until the
// channel or a consumer ends (false).
func (s *subscription) dispatch(g *generation) bool {
	for {
		select {
		case <-s.stop:
			return true
		case <-g.broken:
			return false
		case d, ok := <-g.deliveries:
			if !ok {
				return false
			}
			select {
			case s.tokens <- struct{}{}:
			case <-s.stop:
				return true // d is requeued at teardown
			}
			s.deliver(g.ch, &d)
		}
	}
}

func (s *subscription) deliver(ch *amqp.Channel, d *amqp.Delivery) {
	m := rpcbus.Message{Topic: d.RoutingKey, Value: d.Body}
	m.Key, m.Headers = fromTable(d.Headers)
	tag := d.DeliveryTag
	dl := rpcbus.NewDelivery(m, func() {
		if !s.acksOff.Load() {
			// Fails, harmlessly, on a channel lost since: the broker
			// has given the message to a consumer again.
			_ = ch.Ack(tag, false)
		}
		<-s.tokens
	})
	s.hmu.Lock()
	defer s.hmu.Unlock()
	if s.stopped {
		<-s.tokens
		return // requeued at teardown
	}
	s.h(dl)
}

// fromTable splits AMQP headers into the message key and string headers.
func fromTable(t amqp.Table) ([]byte, map[string]string) {
	if len(t) == 0 {
		return nil, nil
	}
	var key []byte
	var h map[string]string
	for k, v := range t {
		switch k {
		case keyHeader:
			switch v := v.(type) {
			case []byte:
				key = v
			case string:
				key = []byte(v)
			}
			continue
		case deliveryCountHeader:
			continue
		}
		if h == nil {
			h = make(map[string]string, len(t))
		}
		switch v := v.(type) {
		case string:
			h[k] = v
		case []byte:
			h[k] = string(v)
		default:
			h[k] = fmt.Sprint(v)
		}
	}
	return key, h
}

// teardown ends consuming after Close: the broker stops sending, what it
// sent and the handler never saw goes back to the queue at once, and once
// Close has stopped waiting for acknowledgements the channel closes, which
// gives every unacknowledged message back to the group.
func (s *subscription) teardown(g *generation) {
	g.stopForwarders()
	for _, tag := range g.tags {
		if err := g.ch.Cancel(tag, false); err != nil {
			// The channel is gone or going, and its deliveries with it:
			// make sure, so that the consumers' channels close.
			_ = g.ch.Close()
			break
		}
	}
	for _, c := range g.raw {
		for d := range c { // closed once the cancel is through
			_ = d.Nack(false, true)
		}
	}
	select {
	case <-s.finish:
	case <-s.bus.sub.stop:
	}
	_ = g.ch.Close()
}

// Close stops delivering (once it returns, the handler is not called
// again), waits until every delivery handed out has been acknowledged or
// ctx is done, then closes the subscription's channel: the broker gives
// every message not acknowledged by then to another consumer of the
// group's queue. Acknowledgements after Close do nothing. The queues stay,
// with what is published to them until the group's next member comes (or
// queue_expires passes). A second Close returns rpcbus.ErrClosed.
func (s *subscription) Close(ctx context.Context) error {
	if s.closed.Swap(true) {
		return rpcbus.ErrClosed
	}
	s.bus.open.Remove(s)
	s.hmu.Lock()
	s.stopped = true
	s.hmu.Unlock()
	close(s.stop)
	s.cancel()

	var err error
	for len(s.tokens) > 0 && err == nil {
		if !backoff.Sleep(ctx, 2*time.Millisecond) {
			err = fmt.Errorf("amqp: close subscription: %w: %d of group %q on %q, given to the group again (%w)",
				rpcbus.ErrUnacknowledged, len(s.tokens), s.group, s.topics, ctx.Err())
		}
	}
	s.acksOff.Store(true)
	close(s.finish)
	t := time.NewTimer(closeTimeout)
	defer t.Stop()
	select {
	case <-s.done:
	case <-t.C: // a broker not answering: Bus.Close ends it
	}
	return err
}

// abandon closes a subscription whose Subscribe failed.
func (s *subscription) abandon() {
	_ = s.Close(expired())
}

// CloseNow is Close for Bus.Close (closeset.Closer): it does not wait for
// acknowledgements.
func (s *subscription) CloseNow() { s.abandon() }

// expired returns a context that has already ended.
func expired() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
