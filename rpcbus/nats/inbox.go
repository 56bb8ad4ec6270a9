package nats

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/nextpkg/vrpc/internal/backoff"
	"github.com/nextpkg/vrpc/rpcbus"
)

// inboxPendingBytes bounds the replies nats.go holds for a slow inbox
// handler before it drops them (a slow consumer).
const inboxPendingBytes = 256 << 20

// Inbox opens a reply address of its own: the core NATS subject
// "_INBOX.vrpc.<name>.<unique id>", with a subscription on it. It returns
// once the server has registered the subscription, so every message
// published to the address afterwards reaches h. Each inbox has its own
// address, even with a name another inbox (in this process or another)
// already uses.
//
// h is called from one goroutine, in the order the server delivered the
// messages; it must not call Close, which waits for it.
func (b *Bus) Inbox(ctx context.Context, name string, h func(m *rpcbus.Message)) (rpcbus.Inbox, error) {
	if b.open.Closed() {
		return nil, fmt.Errorf("nats: inbox %q: %w", name, rpcbus.ErrClosed)
	}
	if name == "" {
		return nil, errors.New("nats: inbox: empty name")
	}
	if h == nil {
		return nil, fmt.Errorf("nats: inbox %q: nil handler", name)
	}
	if err := checkSubject("inbox name", name); err != nil {
		return nil, fmt.Errorf("nats: inbox: %w", err)
	}
	ib := &inbox{bus: b, addr: inboxPrefix + name + "." + nuid.Next(), h: h}
	sub, err := b.nc.Subscribe(ib.addr, ib.deliver)
	if err != nil {
		return nil, fmt.Errorf("nats: inbox %q: %w", name, b.connErr(err))
	}
	_ = sub.SetPendingLimits(natsgo.DefaultSubPendingMsgsLimit, inboxPendingBytes)
	ib.sub = sub
	if err := b.flush(ctx); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("nats: inbox %q: registering its subscription: %w", name, b.connErr(err))
	}
	if !b.add(ib) {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("nats: inbox %q: %w", name, rpcbus.ErrClosed)
	}
	return ib, nil
}

// flush returns once the server has processed everything sent before it,
// or ctx is done. A context without a deadline is given connect_timeout.
func (b *Bus) flush(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(b.o.ConnectTimeout))
		defer cancel()
	}
	for {
		err := b.nc.FlushWithContext(ctx)
		if err == nil || ctx.Err() != nil || b.nc.IsClosed() {
			if err != nil && !b.nc.IsConnected() {
				err = fmt.Errorf("%w: %w (not connected to NATS: %s)", rpcbus.ErrUnavailable, err, b.nc.Status())
			}
			return err
		}
		// A reconnect fails the flushes in flight; the subscription is
		// sent again on the new connection, so flush there (the loop
		// ends above once ctx is done).
		backoff.Sleep(ctx, 10*time.Millisecond)
	}
}

// inbox is a core NATS subscription on a subject of its own.
type inbox struct {
	bus  *Bus
	addr string
	h    func(*rpcbus.Message)
	sub  *natsgo.Subscription

	mu     sync.Mutex // held while h runs, so that Close waits for it
	closed bool
}

// Address returns the subject replies are published to.
func (ib *inbox) Address() string { return ib.addr }

func (ib *inbox) deliver(msg *natsgo.Msg) {
	m := toMessage(msg)
	ib.mu.Lock()
	defer ib.mu.Unlock()
	if !ib.closed {
		ib.h(&m)
	}
}

// Close stops the inbox and waits until its handler has returned; the
// handler is not called again. Messages published to the address
// afterwards are dropped by the server. A second Close returns
// rpcbus.ErrClosed.
func (ib *inbox) Close() error {
	ib.mu.Lock()
	if ib.closed {
		ib.mu.Unlock()
		return fmt.Errorf("nats: close inbox %q: %w", ib.addr, rpcbus.ErrClosed)
	}
	ib.closed = true
	ib.mu.Unlock()
	ib.bus.open.Remove(ib)
	_ = ib.sub.Unsubscribe()
	return nil
}

// CloseNow is Close, for Bus.Close (closeset.Closer).
func (ib *inbox) CloseNow() { _ = ib.Close() }

// InboxOf reports whether address is one Inbox returns for name: the inbox
// prefix, name, a dot and a NUID.
func (b *Bus) InboxOf(address, name string) bool {
	rest, ok := strings.CutPrefix(address, inboxPrefix)
	return ok && rpcbus.InboxSuffixed(rest, name, 22, nuidAlphabet)
}

// nuidAlphabet is the characters of a NUID.
const nuidAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
