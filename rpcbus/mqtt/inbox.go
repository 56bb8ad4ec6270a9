package mqtt

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"sync"

	"github.com/eclipse/paho.golang/paho"

	"github.com/nextpkg/vrpc/rpcbus"
)

// Inbox opens a reply address: name, a '.' and a random suffix, so that
// each inbox has a topic of its own even when several processes share a
// name (a client id); callers still tell replies apart by request id. The
// inbox is a plain (not shared) QoS 1 subscription on the bus's publishing
// connection, and Inbox returns once the broker has acknowledged it
// (SUBACK): every message published to Address afterwards reaches h while
// the connection holds. The connection's session ends with it, so replies
// published while the bus reconnects are lost; the subscription is renewed
// on the next connection.
//
// h is called from the connection's reading goroutine, one message at a
// time, and must return quickly: the replies of every inbox of the bus wait
// for it. It must not call Close, which waits for it.
func (b *Bus) Inbox(ctx context.Context, name string, h func(m *rpcbus.Message)) (rpcbus.Inbox, error) {
	if b.open.Closed() {
		return nil, rpcbus.ErrClosed
	}
	if h == nil {
		return nil, fmt.Errorf("mqtt: inbox %q: nil handler", name)
	}
	addr := name + "." + strings.ToLower(rand.Text()[:12])
	mt, err := mqttTopic(addr)
	if err != nil {
		return nil, fmt.Errorf("mqtt: inbox: %w", err)
	}
	pub, err := b.publisher()
	if err != nil {
		return nil, err
	}
	ib := &inbox{bus: b, addr: addr, topic: mt, h: h}
	b.inboxMu.Lock()
	b.inboxes[mt] = ib // from now on every new connection subscribes it
	b.inboxMu.Unlock()
	if err := b.subscribeInbox(ctx, pub, mt); err != nil {
		b.dropInbox(mt)
		return nil, fmt.Errorf("mqtt: inbox %q: %w", addr, err)
	}
	if !b.open.Add(ib, nil) {
		b.dropInbox(mt)
		return nil, rpcbus.ErrClosed
	}
	return ib, nil
}

// subscribeInbox subscribes the inbox topic mt on the current connection,
// or on the next one if it drops first.
func (b *Bus) subscribeInbox(ctx context.Context, pub *link, mt string) error {
	for {
		c, err := pub.current(ctx)
		if err != nil {
			return err
		}
		err = c.subscribe(ctx, []paho.SubscribeOptions{{Topic: mt, QoS: 1}})
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return fmt.Errorf("%w (%v)", ctx.Err(), err)
		case c.alive():
			return err
		}
	}
}

func (b *Bus) dropInbox(mt string) {
	b.inboxMu.Lock()
	delete(b.inboxes, mt)
	b.inboxMu.Unlock()
}

// resubscribeInboxes is the publishing link's onUp: a new connection has a
// new session, which needs every open inbox subscribed again.
func (b *Bus) resubscribeInboxes(ctx context.Context, c *conn, _ bool) error {
	b.inboxMu.RLock()
	subs := make([]paho.SubscribeOptions, 0, len(b.inboxes))
	for mt := range b.inboxes {
		subs = append(subs, paho.SubscribeOptions{Topic: mt, QoS: 1})
	}
	b.inboxMu.RUnlock()
	for len(subs) > 0 {
		n := min(len(subs), 100) // keep SUBSCRIBE packets small
		if err := c.subscribe(ctx, subs[:n]); err != nil {
			return fmt.Errorf("renewing inbox subscriptions: %w", err)
		}
		subs = subs[n:]
	}
	return nil
}

// onInboxMessage is the publishing link's onPublish: it hands the message
// to its inbox, then acknowledges it.
func (b *Bus) onInboxMessage(c *conn, p *paho.Publish) {
	b.inboxMu.RLock()
	ib := b.inboxes[p.Topic]
	b.inboxMu.RUnlock()
	if ib != nil {
		m := toMessage(p, ib.addr)
		ib.deliver(&m)
	}
	if p.QoS > 0 {
		c.ack(p.PacketID)
	}
}

// toMessage turns a received PUBLISH into a Message for topic name.
func toMessage(p *paho.Publish, name string) rpcbus.Message {
	m := rpcbus.Message{Topic: name, Value: p.Payload}
	if pp := p.Properties; pp != nil {
		m.Key = pp.CorrelationData
		if len(pp.User) > 0 {
			m.Headers = make(map[string]string, len(pp.User))
			for _, u := range pp.User {
				m.Headers[u.Key] = u.Value
			}
		}
	}
	return m
}

// inbox is one reply address.
type inbox struct {
	bus   *Bus
	addr  string
	topic string

	mu     sync.Mutex // held while h runs, so that Close waits for it
	h      func(*rpcbus.Message)
	closed bool
}

// Address returns the reply address: the inbox's name with its suffix.
func (ib *inbox) Address() string { return ib.addr }

func (ib *inbox) deliver(m *rpcbus.Message) {
	ib.mu.Lock()
	defer ib.mu.Unlock()
	if !ib.closed {
		ib.h(m)
	}
}

// Close stops delivering to the handler (once it returns, the handler is
// never called again) and unsubscribes. A second Close returns
// rpcbus.ErrClosed.
func (ib *inbox) Close() error {
	ib.mu.Lock()
	if ib.closed {
		ib.mu.Unlock()
		return fmt.Errorf("mqtt: close inbox %q: %w", ib.addr, rpcbus.ErrClosed)
	}
	ib.closed = true
	ib.mu.Unlock()
	b := ib.bus
	b.open.Remove(ib)
	b.dropInbox(ib.topic)
	// Best effort: were the UNSUBSCRIBE lost, messages to the address
	// would only be acknowledged and dropped, until the connection ends.
	if pub, err := b.publisher(); err == nil {
		pub.mu.Lock()
		c, ready := pub.cur, pub.ready
		pub.mu.Unlock()
		if ready && c.alive() {
			ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
			_ = c.unsubscribe(ctx, []string{ib.topic})
			cancel()
		}
	}
	return nil
}

// CloseNow is Close, for Bus.Close (closeset.Closer).
func (ib *inbox) CloseNow() { _ = ib.Close() }

// InboxOf reports whether address is one Inbox returns for name: name, a
// dot and 12 random characters.
func (b *Bus) InboxOf(address, name string) bool {
	return rpcbus.InboxSuffixed(address, name, 12, rpcbus.Base32Lower)
}
