package vserver

import (
	"context"
	"fmt"
	"hash/maphash"
	"math"
	"sync"
	"time"

	"github.com/nextpkg/vrpc/vconfig"
)

// DedupStore remembers which requests a server has served and their
// replies, so that a request delivered again (after a server died before
// acknowledging it, a rebalance, or a client re-publishing it) is answered
// from the store instead of calling the target a second time. Keys are
// "<client id>\x00<request id>\x00<reply address>". Servers that share a
// target should share a store (Redis) for the guarantee to hold across
// them.
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

// DedupFactory opens the store a server's dedup section names. If the
// store it returns is an io.Closer, the server closes it at Stop.
type DedupFactory func(c vconfig.DedupConf) (DedupStore, error)

var dedupStores sync.Map // dedup.store name → DedupFactory

// RegisterDedupStore makes dedup.store name open with f. Store packages
// call it from their init: "redis" is registered by importing
// github.com/nextpkg/vrpc/vserver/redisdedup. A second registration of a
// name replaces the first.
func RegisterDedupStore(name string, f DedupFactory) { dedupStores.Store(name, f) }

// dedupPackages are the packages that register the stores vconfig knows,
// for the error when a program has not linked one.
var dedupPackages = map[string]string{"redis": "github.com/nextpkg/vrpc/vserver/redisdedup"}

// newDedupStore opens the store c names; nil for none.
func newDedupStore(c vconfig.DedupConf) (DedupStore, error) {
	switch c.Store {
	case "none":
		return nil, nil
	case "", "memory":
		return NewMemoryDedup(c.Size, WithMaxBytes(c.MaxBytes)), nil
	}
	f, ok := dedupStores.Load(c.Store)
	if !ok {
		return nil, fmt.Errorf("dedup.store %s: this program does not link that store: import _ %q (the vrpc command does)",
			c.Store, dedupPackages[c.Store])
	}
	return f.(DedupFactory)(c)
}

// MemoryDedup is a DedupStore in the server's memory, bounded in entries
// and in bytes (least recently used dropped first: WithMaxBytes) and in
// time (each entry's ttl). Expired entries are dropped as the store is
// used: every Claim and Done looks at two more slots, round the store, so
// that no entry outlives its ttl by more than the next size/2 calls, with
// no goroutine of its own.
//
// A full store holds size entries for up to ttl (100000 and 10 minutes by
// default), live all the while: every garbage collection of the process
// marks them. So an entry is laid out for the collector, not as a struct
// of its own: its key and reply in slices of strings and of byte slices,
// which the collector scans as two dense arrays of pointers to objects
// without pointers, and its expiry and list links in a slice without
// pointers, which it does not scan at all.
type MemoryDedup struct {
	max      int
	maxBytes int64
	epoch    time.Time // expiries are monotonic nanoseconds since

	mu   sync.Mutex
	seed maphash.Seed
	// index is by the hash of the key: the first of the slots whose keys
	// have that hash, the others chained through their meta.chain. Without
	// strings in it, the collector does not scan it.
	index map[uint64]int32
	// Slot i's entry; slot 0 is the root of the LRU list (its next the
	// most recently used, its prev the least) and holds none.
	keys    []string
	replies [][]byte // nil while in progress
	meta    []dedupMeta
	free    int32 // first free slot, chained through next; 0: none
	n       int
	bytes   int64 // of the entries held, as entryBytes counts them
	sweep   int32 // the slot the sweep looked at last
}

type dedupMeta struct {
	expires int64
	// hash is the key's, kept so that dropping the entry does not read the
	// key again.
	hash              uint64
	prev, next, chain int32
	live              bool // the slot holds an entry (not free)
}

// entryOverhead is what an entry costs besides its key and reply bytes: its
// slots in the three slices and its index entry.
const entryOverhead = 96

func entryBytes(key string, reply []byte) int64 {
	return int64(len(key) + len(reply) + entryOverhead)
}

// MemoryDedupOption configures NewMemoryDedup.
type MemoryDedupOption interface{ applyDedup(*MemoryDedup) }

type dedupOptionFunc func(*MemoryDedup)

func (f dedupOptionFunc) applyDedup(m *MemoryDedup) { f(m) }

// WithMaxBytes bounds the bytes of keys and replies the store holds (and
// a small overhead per entry); 0 or less: no bound but the entry count.
// An entry larger than n on its own is not kept at all.
func WithMaxBytes(n int) MemoryDedupOption {
	return dedupOptionFunc(func(m *MemoryDedup) {
		if n > 0 {
			m.maxBytes = int64(n)
		}
	})
}

// NewMemoryDedup returns a MemoryDedup holding at most max entries (and
// never more than math.MaxInt32-2: its slots are numbered in an int32).
func NewMemoryDedup(max int, opts ...MemoryDedupOption) *MemoryDedup {
	m := &MemoryDedup{max: min(max, math.MaxInt32-2), maxBytes: math.MaxInt64, epoch: time.Now(), seed: maphash.MakeSeed(), index: make(map[uint64]int32)}
	m.keys, m.replies, m.meta = make([]string, 1), make([][]byte, 1), make([]dedupMeta, 1)
	for _, o := range opts {
		o.applyDedup(m)
	}
	return m
}

// Claim implements DedupStore.
func (m *MemoryDedup) Claim(_ context.Context, key string, ttl time.Duration) ([]byte, bool, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweepSome(now)
	if i := m.find(key); i != 0 {
		if now < m.meta[i].expires {
			m.unlink(i)
			m.pushFront(i)
			return m.replies[i], false, nil
		}
		m.remove(i)
	}
	m.add(key, nil, expiry(now, ttl))
	return nil, true, nil
}

// Done implements DedupStore.
func (m *MemoryDedup) Done(_ context.Context, key string, reply []byte, ttl time.Duration) error {
	now := m.now()
	expires := expiry(now, ttl)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweepSome(now)
	i := m.find(key)
	if i == 0 { // dropped for room meanwhile: keep the reply anyway
		m.add(key, reply, expires)
		return nil
	}
	m.bytes += int64(len(reply) - len(m.replies[i]))
	m.replies[i], m.meta[i].expires = reply, expires
	m.trim()
	return nil
}

// Release implements DedupStore.
func (m *MemoryDedup) Release(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if i := m.find(key); i != 0 && m.replies[i] == nil {
		m.remove(i)
	}
	return nil
}

// Bytes returns the bytes the entries held count against WithMaxBytes:
// their keys and replies and a small overhead each.
func (m *MemoryDedup) Bytes() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bytes
}

// sweepSome drops the entries of the next two slots if they have expired.
func (m *MemoryDedup) sweepSome(now int64) {
	last := int32(len(m.meta) - 1)
	if last == 0 {
		return
	}
	for range 2 {
		if m.sweep++; m.sweep > last {
			m.sweep = 1
		}
		if e := &m.meta[m.sweep]; e.live && e.expires <= now {
			m.remove(m.sweep)
		}
	}
}

// Len returns the number of entries held.
func (m *MemoryDedup) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.n
}

// find returns the slot of key, or 0.
func (m *MemoryDedup) find(key string) int32 {
	i := m.index[maphash.String(m.seed, key)]
	for i != 0 && m.keys[i] != key {
		i = m.meta[i].chain
	}
	return i
}

func (m *MemoryDedup) now() int64 { return int64(time.Since(m.epoch)) }

// expiry is now+ttl, saturated rather than wrapped.
func expiry(now int64, ttl time.Duration) int64 {
	e := now + int64(ttl)
	switch {
	case ttl > 0 && e < now:
		return math.MaxInt64
	case ttl < 0 && e > now:
		return math.MinInt64
	}
	return e
}

// add puts a new entry first and drops the least recently used beyond max
// entries or maxBytes.
func (m *MemoryDedup) add(key string, reply []byte, expires int64) {
	h := maphash.String(m.seed, key)
	i := m.free
	if i != 0 {
		m.free = m.meta[i].next
		m.keys[i], m.replies[i] = key, reply
		m.meta[i] = dedupMeta{expires: expires, hash: h, live: true}
	} else {
		i = int32(len(m.meta))
		m.keys = append(m.keys, key)
		m.replies = append(m.replies, reply)
		m.meta = append(m.meta, dedupMeta{expires: expires, hash: h, live: true})
	}
	m.meta[i].chain = m.index[h]
	m.index[h] = i
	m.pushFront(i)
	m.n++
	m.bytes += entryBytes(key, reply)
	m.trim()
}

// trim drops the least recently used entries while the store holds more
// than max entries or maxBytes.
func (m *MemoryDedup) trim() {
	for (m.n > m.max || m.bytes > m.maxBytes) && m.n > 0 {
		m.remove(m.meta[0].prev)
	}
}

// remove drops slot i's entry and frees the slot.
func (m *MemoryDedup) remove(i int32) {
	m.unlink(i)
	h := m.meta[i].hash
	if first := m.index[h]; first == i {
		if next := m.meta[i].chain; next != 0 {
			m.index[h] = next
		} else {
			delete(m.index, h)
		}
	} else {
		for j := first; ; j = m.meta[j].chain {
			if m.meta[j].chain == i {
				m.meta[j].chain = m.meta[i].chain
				break
			}
		}
	}
	m.bytes -= entryBytes(m.keys[i], m.replies[i])
	m.keys[i], m.replies[i] = "", nil // for the collector
	m.meta[i].live = false
	m.meta[i].next = m.free
	m.free = i
	m.n--
}

func (m *MemoryDedup) pushFront(i int32) {
	first := m.meta[0].next
	m.meta[i].prev, m.meta[i].next = 0, first
	m.meta[first].prev = i
	m.meta[0].next = i
}

func (m *MemoryDedup) unlink(i int32) {
	e := &m.meta[i]
	m.meta[e.prev].next = e.next
	m.meta[e.next].prev = e.prev
}
