package amqp

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/nextpkg/vrpc/rpcbus"
)

const (
	// inboxSuffixLen is the length of the random part of an inbox address.
	inboxSuffixLen = 12
	// maxAddressBytes is the longest rpcbus.ValidName.
	maxAddressBytes = 200
)

// Inbox opens a reply address of its own: "<name>.<12 random characters>",
// the name of an exclusive, auto-delete classic queue on the bus's
// consuming connection, bound to the bus's exchange with the address as
// routing key. Every Inbox call has a unique address, even with one name
// in several processes, so a reply reaches only the inbox that sent the
// request. Inbox returns once the queue consumes: every message published
// to the address afterwards reaches h.
//
// The queue is deleted when the inbox closes or its connection is lost; on
// reconnection the inbox declares it again under the same address.
// Replies published while it was gone were refused (rpcbus.ErrUnknownTopic
// to their publisher) and are lost: their callers time out.
//
// h is called from the inbox's one goroutine, in the order the broker
// delivers; it must not call Close, which waits for it.
func (b *Bus) Inbox(ctx context.Context, name string, h func(m *rpcbus.Message)) (rpcbus.Inbox, error) {
	if b.open.Closed() {
		return nil, rpcbus.ErrClosed
	}
	if name == "" {
		return nil, errors.New("amqp: inbox: empty name")
	}
	if h == nil {
		return nil, fmt.Errorf("amqp: inbox %q: nil handler", name)
	}
	ib := &inbox{
		bus:   b,
		addr:  inboxAddress(name),
		h:     h,
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
		ready: make(chan error, 1),
	}
	ib.ctx, ib.cancel = context.WithCancel(context.Background())
	if !b.open.Add(ib, nil) {
		ib.cancel()
		return nil, rpcbus.ErrClosed
	}
	go ib.run()
	wrap := func(err error) error {
		return fmt.Errorf("amqp: inbox %q at %q: %w", name, ib.addr, err)
	}
	select {
	case err := <-ib.ready:
		if err == nil {
			return ib, nil
		}
		_ = ib.Close()
		return nil, wrap(err)
	case <-ib.done:
		select {
		case err := <-ib.ready:
			if err != nil {
				_ = ib.Close()
				return nil, wrap(err)
			}
		default:
		}
		return nil, rpcbus.ErrClosed // Bus.Close closed it
	case <-ctx.Done():
		_ = ib.Close()
		ib.mu.Lock()
		last := ib.lastErr
		ib.mu.Unlock()
		if last == nil {
			return nil, wrap(ctx.Err())
		}
		return nil, wrap(fmt.Errorf("%w (last: %w)", ctx.Err(), last))
	}
}

// inboxAddress is name with a random suffix, within the 200 bytes of an
// rpcbus.ValidName (and so within AMQP's 255).
func inboxAddress(name string) string {
	return shortName(name) + "." + strings.ToLower(rand.Text()[:inboxSuffixLen])
}

// shortName is name, or when too long for an inbox address its start and
// a hash of the whole.
func shortName(name string) string {
	if limit := maxAddressBytes - inboxSuffixLen - 1; len(name) > limit {
		sum := sha256.Sum256([]byte(name))
		name = name[:limit-17] + "-" + hex.EncodeToString(sum[:8])
	}
	return name
}

// inbox consumes its exclusive queue, declared again after a connection
// loss.
type inbox struct {
	bus  *Bus
	addr string
	h    func(*rpcbus.Message)

	hmu     sync.Mutex // held while h runs
	stopped bool       // under hmu

	ctx    context.Context // ends at Close: setup stops waiting
	cancel context.CancelFunc
	stop   chan struct{}
	done   chan struct{}
	ready  chan error
	closed atomic.Bool

	mu      sync.Mutex
	lastErr error
}

// Address returns the inbox's queue name, the routing key of its replies.
func (ib *inbox) Address() string { return ib.addr }

func (ib *inbox) run() {
	defer close(ib.done)
	ib.bus.consumeLoop(ib.ctx, "inbox "+ib.addr, ib.ready, ib.failed, func() (func() bool, error) {
		ch, deliveries, err := ib.setup()
		if err != nil {
			return nil, err
		}
		return func() bool {
			stopped := ib.consume(deliveries)
			// Closing the channel ends the consumer, and the auto-delete
			// queue with it.
			_ = ch.Close()
			return stopped
		}, nil
	})
}

func (ib *inbox) failed(err error) {
	ib.mu.Lock()
	ib.lastErr = err
	ib.mu.Unlock()
}

// setup declares the queue, binds it and consumes it. A queue left by a
// lost connection that the broker has not noticed yet is still locked to
// it (RESOURCE_LOCKED): setup is retried until the broker lets it go.
func (ib *inbox) setup() (*amqp.Channel, <-chan amqp.Delivery, error) {
	conn, err := ib.bus.sub.get(ib.ctx)
	if err != nil {
		return nil, nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, nil, err
	}
	fail := func(what string, err error) (*amqp.Channel, <-chan amqp.Delivery, error) {
		_ = ch.Close()
		return nil, nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := ib.bus.declareExchange(ch); err != nil {
		return nil, nil, err
	}
	// Classic, whatever the virtual host's default queue type: only
	// classic queues can be exclusive.
	args := amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeClassic}
	if _, err := ch.QueueDeclare(ib.addr, false, true, true, false, args); err != nil {
		return fail("declaring queue", err)
	}
	if err := ch.QueueBind(ib.addr, ib.addr, ib.bus.o.Exchange, false, nil); err != nil {
		return fail(fmt.Sprintf("binding to exchange %q", ib.bus.o.Exchange), err)
	}
	// Automatic acknowledgement: a reply is of use only to this process,
	// and a lost process loses its queue anyway.
	d, err := ch.Consume(ib.addr, "vrpc-inbox", true, true, false, false, nil)
	if err != nil {
		return fail("consuming", err)
	}
	return ch, d, nil
}

// consume hands messages to the handler until Close (true) or the channel
// ends (false).
func (ib *inbox) consume(deliveries <-chan amqp.Delivery) bool {
	for {
		select {
		case <-ib.stop:
			return true
		case d, ok := <-deliveries:
			if !ok {
				return false
			}
			m := &rpcbus.Message{Topic: d.RoutingKey, Value: d.Body}
			m.Key, m.Headers = fromTable(d.Headers)
			ib.hmu.Lock()
			if !ib.stopped {
				ib.h(m)
			}
			ib.hmu.Unlock()
		}
	}
}

// Close stops the inbox (once it returns, the handler is not called again)
// and deletes its queue: later publishes to the address fail with
// rpcbus.ErrUnknownTopic. A second Close returns rpcbus.ErrClosed.
func (ib *inbox) Close() error {
	if ib.closed.Swap(true) {
		return rpcbus.ErrClosed
	}
	ib.bus.open.Remove(ib)
	ib.hmu.Lock()
	ib.stopped = true
	ib.hmu.Unlock()
	close(ib.stop)
	ib.cancel()
	t := time.NewTimer(closeTimeout)
	defer t.Stop()
	select {
	case <-ib.done:
	case <-t.C: // a broker not answering: Bus.Close ends it
	}
	return nil
}

// CloseNow is Close, for Bus.Close (closeset.Closer).
func (ib *inbox) CloseNow() { _ = ib.Close() }

// InboxOf reports whether address is one Inbox returns for name: name (or,
// when too long, its shortened form), a dot and 12 random characters.
func (b *Bus) InboxOf(address, name string) bool {
	return rpcbus.InboxSuffixed(address, shortName(name), inboxSuffixLen, rpcbus.Base32Lower)
}
