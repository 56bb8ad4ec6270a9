package memory

import (
	"fmt"

	"github.com/nextpkg/vrpc/rpcbus"
)

// inbox is a private address whose messages go to one handler.
type inbox struct {
	bus  *Bus
	addr string
	h    func(m *rpcbus.Message)

	// Guarded by broker.mu.
	queue  []*rpcbus.Message
	closed bool

	wake chan struct{} // queue is not empty
	stop chan struct{} // closed by Close
	done chan struct{} // closed when run returns
}

// Address returns the inbox's address: its name, a dot and a random
// suffix.
func (ib *inbox) Address() string { return ib.addr }

// Close removes the address, so that Publish to it fails with
// rpcbus.ErrUnknownTopic, drops the messages not yet handed to the
// handler, and waits for a handler call in progress to return; it must not
// be called from the handler. Later calls return rpcbus.ErrClosed.
func (ib *inbox) Close() error {
	br := ib.bus.br
	br.mu.Lock()
	if ib.closed {
		br.mu.Unlock()
		return fmt.Errorf("memory: close inbox %q: %w", ib.addr, rpcbus.ErrClosed)
	}
	ib.detach()
	br.mu.Unlock()
	close(ib.stop)
	<-ib.done
	return nil
}

// detach unregisters the inbox; broker.mu must be held.
func (ib *inbox) detach() {
	ib.closed = true
	ib.queue = nil
	delete(ib.bus.br.inboxes, ib.addr)
	delete(ib.bus.inboxes, ib)
}

func (ib *inbox) run() {
	defer ib.bus.wg.Done()
	defer close(ib.done)
	for {
		select {
		case <-ib.stop:
			return
		case <-ib.wake:
		}
		for m := ib.pop(); m != nil; m = ib.pop() {
			ib.h(m)
		}
	}
}

func (ib *inbox) pop() *rpcbus.Message {
	br := ib.bus.br
	br.mu.Lock()
	defer br.mu.Unlock()
	if ib.closed || len(ib.queue) == 0 {
		return nil
	}
	m := ib.queue[0]
	ib.queue[0] = nil
	ib.queue = ib.queue[1:]
	if len(ib.queue) == 0 {
		ib.queue = nil
	}
	return m
}

// InboxOf reports whether address is one Inbox returns for name: name, a
// dot and 26 characters of rand.Text.
func (b *Bus) InboxOf(address, name string) bool {
	return rpcbus.InboxSuffixed(address, name, 26, rpcbus.Base32Upper)
}
