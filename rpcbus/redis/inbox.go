package redis

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/nextpkg/vrpc/rpcbus"
)

const (
	// inboxBatch is how many entries one XREAD of an inbox returns at most.
	inboxBatch = 1000
	// inboxDeleteTimeout bounds the deletion of a closed inbox's stream,
	// which expires anyway.
	inboxDeleteTimeout = time.Second
)

// Inbox opens a reply address of its own: the address is name, a dot and a
// random suffix, so that several inboxes with one name (client instances
// sharing a client id) never share a stream. Its stream is created, empty,
// before Inbox returns, and read from its start by a connection of the
// inbox's own: every message published to the address after Inbox returned
// reaches h. The stream expires inbox_ttl after the inbox stops refreshing
// it (every inbox_ttl/3), so the address of a process that died vanishes,
// and Publish to it fails with rpcbus.ErrUnknownTopic; Close deletes it at
// once.
//
// h is called from the inbox's one goroutine, in publish order; it must not
// call Close, which waits for it.
func (b *Bus) Inbox(ctx context.Context, name string, h func(m *rpcbus.Message)) (rpcbus.Inbox, error) {
	if b.open.Closed() {
		return nil, rpcbus.ErrClosed
	}
	if name == "" {
		return nil, errors.New("redis: inbox: empty name")
	}
	if h == nil {
		return nil, fmt.Errorf("redis: inbox %q: nil handler", name)
	}
	addr := name + "." + randomSuffix(12)
	ib := &inbox{
		bus:   b,
		addr:  addr,
		key:   b.o.key(addr),
		ttl:   time.Duration(b.o.InboxTTL),
		block: time.Duration(b.o.Block),
		h:     h,
		done:  make(chan struct{}),
	}
	ib.stop, ib.halt = context.WithCancel(context.Background())
	err := b.retry(ctx, func() error { return b.createStreams(ctx, []string{ib.key}, ib.ttl) })
	if err != nil {
		return nil, fmt.Errorf("redis: inbox %q: creating its stream: %w", addr, err)
	}
	ib.rd = goredis.NewClient(b.o.clientOptions(b.addr, true, &ib.connID))
	if !b.open.Add(ib, nil) {
		_ = ib.rd.Close()
		return nil, rpcbus.ErrClosed
	}
	go ib.run()
	return ib, nil
}

// inbox reads one stream of its own from its start.
type inbox struct {
	bus    *Bus
	rd     *goredis.Client // the run goroutine's connection
	connID atomic.Int64    // its CLIENT ID, for CLIENT UNBLOCK
	addr   string
	key    string
	ttl    time.Duration
	block  time.Duration
	h      func(*rpcbus.Message)
	stop   context.Context // ends at Close: stop reading
	halt   context.CancelFunc
	done   chan struct{}
	closed atomic.Bool
}

// Address returns the topic replies are published to.
func (ib *inbox) Address() string { return ib.addr }

func (ib *inbox) run() {
	defer close(ib.done)
	ctx := context.Background()
	var (
		last        = "0-0" // the stream is new: everything in it is ours
		nextRefresh = time.Now().Add(ib.ttl / 3)
		bo          = newBackoff()
		failed      bool // the last attempt: pause before the next
	)
	for ib.stop.Err() == nil {
		if failed && !bo.Wait(ib.stop) {
			return
		}
		if !time.Now().Before(nextRefresh) {
			recreated, err := ib.refresh(ctx)
			if err != nil {
				failed = true
				continue
			}
			if recreated {
				last = "0-0"
			}
			nextRefresh = time.Now().Add(ib.ttl / 3)
		}
		block := max(min(ib.block, time.Until(nextRefresh)), time.Millisecond)
		res, err := ib.rd.XRead(ctx, &goredis.XReadArgs{
			Streams: []string{ib.key, last},
			Count:   inboxBatch,
			Block:   block,
		}).Result()
		switch {
		case errors.Is(err, goredis.Nil):
			failed = false
			bo.Reset()
			continue
		case err != nil:
			// Check the stream at once when the server is back: it may
			// have restarted without it.
			nextRefresh = time.Time{}
			failed = true
			continue
		}
		failed = false
		bo.Reset()
		for _, st := range res {
			for _, xm := range st.Messages {
				last = xm.ID
				m := decode(ib.addr, xm.Values)
				ib.h(&m)
			}
		}
	}
}

// refresh extends the stream's life by ttl. If the stream is gone (the
// server restarted without persistence, or could not be reached for
// longer than ttl), it creates it again and says so: a new stream is read
// from its start.
func (ib *inbox) refresh(ctx context.Context) (recreated bool, err error) {
	ok, err := ib.rd.PExpire(ctx, ib.key, ib.ttl).Result()
	if err != nil || ok {
		return false, err
	}
	if err := ib.bus.createStreams(ctx, []string{ib.key}, ib.ttl); err != nil {
		return false, err
	}
	return true, nil
}

// Close stops the inbox, waits until its handler has returned and deletes
// the inbox's stream (should the server not be reachable, the stream
// expires after inbox_ttl). A second Close returns rpcbus.ErrClosed.
func (ib *inbox) Close() error {
	if ib.closed.Swap(true) {
		return rpcbus.ErrClosed
	}
	ib.bus.open.Remove(ib)
	ib.halt()
	ib.bus.unblock(&ib.connID, ib.rd, ib.done)
	_ = ib.rd.Close()
	ctx, cancel := context.WithTimeout(context.Background(), inboxDeleteTimeout)
	defer cancel()
	// If this fails, the stream expires after inbox_ttl anyway.
	_ = ib.bus.rdb.Del(ctx, ib.key).Err()
	return nil
}

// CloseNow is Close, for Bus.Close (closeset.Closer).
func (ib *inbox) CloseNow() { _ = ib.Close() }

// InboxOf reports whether address is one Inbox returns for name: name, a
// dot and 12 random characters.
func (b *Bus) InboxOf(address, name string) bool {
	return rpcbus.InboxSuffixed(address, name, 12, rpcbus.Base32Lower)
}
