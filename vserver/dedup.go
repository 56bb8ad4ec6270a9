package vserver

import (
	"container/list"
	"context"
	"sync"
	"time"
)

// DedupStore remembers which requests a server has served and their
// replies, so that a request delivered again (after a server died before
// acknowledging it, a rebalance, or a client re-publishing it) is answered
// from the store instead of calling the target a second time. Keys are
// "<client id>\x00<request id>". Servers that share a target should share a
// store (Redis) for the guarantee to hold across them.
type DedupStore interface {
	// Claim marks key as being served by the caller until ttl passes. It
	// reports claimed when the caller is first and should serve the
	// request; otherwise reply is the stored reply, or nil while another
	// delivery of the same request is being served.
	Claim(ctx context.Context, key string, ttl time.Duration) (reply []byte, claimed bool, err error)
	// Done stores the encoded reply of a claimed key for ttl.
	Done(ctx context.Context, key string, reply []byte, ttl time.Duration) error
	// Release drops a claim whose request was not served, so that a later
	// delivery serves it.
	Release(ctx context.Context, key string) error
}

// MemoryDedup is a DedupStore in the server's memory, bounded in entries
// (least recently used dropped first) and in time (each entry's ttl).
type MemoryDedup struct {
	max int

	mu      sync.Mutex
	entries map[string]*list.Element
	lru     list.List // of *dedupEntry, most recent at the front
}

type dedupEntry struct {
	key     string
	reply   []byte // nil while in progress
	expires time.Time
}

// NewMemoryDedup returns a MemoryDedup holding at most max entries.
func NewMemoryDedup(max int) *MemoryDedup {
	return &MemoryDedup{max: max, entries: make(map[string]*list.Element)}
}

// Claim implements DedupStore.
func (m *MemoryDedup) Claim(_ context.Context, key string, ttl time.Duration) ([]byte, bool, error) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.entries[key]; ok {
		e := el.Value.(*dedupEntry)
		if now.Before(e.expires) {
			m.lru.MoveToFront(el)
			return e.reply, false, nil
		}
		m.remove(el)
	}
	m.entries[key] = m.lru.PushFront(&dedupEntry{key: key, expires: now.Add(ttl)})
	for m.lru.Len() > m.max {
		m.remove(m.lru.Back())
	}
	return nil, true, nil
}

// Done implements DedupStore.
func (m *MemoryDedup) Done(_ context.Context, key string, reply []byte, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.entries[key]
	if !ok { // dropped for room meanwhile: keep the reply anyway
		el = m.lru.PushFront(&dedupEntry{key: key})
		m.entries[key] = el
		for m.lru.Len() > m.max {
			m.remove(m.lru.Back())
		}
	}
	e := el.Value.(*dedupEntry)
	e.reply, e.expires = reply, time.Now().Add(ttl)
	return nil
}

// Release implements DedupStore.
func (m *MemoryDedup) Release(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.entries[key]; ok && el.Value.(*dedupEntry).reply == nil {
		m.remove(el)
	}
	return nil
}

// Len returns the number of entries held.
func (m *MemoryDedup) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lru.Len()
}

func (m *MemoryDedup) remove(el *list.Element) {
	m.lru.Remove(el)
	delete(m.entries, el.Value.(*dedupEntry).key)
}
