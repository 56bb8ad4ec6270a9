package redis

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/nextpkg/vrpc/rpcbus"
)

const (
	// maxClaimEvery bounds how long entries handed back by a member that
	// closed wait for another member's next XAUTOCLAIM.
	maxClaimEvery = time.Second
	// claimCallsPerPass bounds the XAUTOCLAIM calls per topic in one pass,
	// so that a long pending list is scanned over several passes.
	claimCallsPerPass = 16
	// orphaned is the consumer that entries handed back at Close are parked
	// on, idle since 1970, until a member claims them. Like createGroup it
	// holds a colon, which no consumer name of the bus does.
	orphaned = "vrpc:orphaned"
)

// handBack moves every entry pending for consumer ARGV[2] of group ARGV[1]
// on stream KEYS[1] to consumer ARGV[3], as idle as can be (delivered at
// Unix time 1 ms), and deletes consumer ARGV[2]. It runs atomically, so no
// entry is lost with the consumer (XGROUP DELCONSUMER drops the entries
// still pending for it). It returns how many entries it moved, or -1 if it
// gave up before the end (a pending list Redis will not shrink), leaving
// the consumer and what is left for XAUTOCLAIM once claim_idle has passed.
var handBack = goredis.NewScript(`
local n = 0
for _ = 1, 100 do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1000, ARGV[2])
  if #p == 0 then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
    return n
  end
  local args = {'XCLAIM', KEYS[1], ARGV[1], ARGV[3], '0'}
  for _, e in ipairs(p) do args[#args + 1] = e[1] end
  args[#args + 1] = 'TIME'
  args[#args + 1] = '1'
  args[#args + 1] = 'JUSTID'
  redis.call(unpack(args))
  n = n + #p
end
return -1
`)

// Subscribe creates the consumer group opts.Group on the stream of each
// topic (and the stream, if missing), reading from the start of the
// stream, so that requests published before the first server joined are
// served. It returns once the groups exist; while the server cannot be
// reached it retries until ctx ends.
//
// h is called from one goroutine per subscription, in stream order for
// each topic, and must return quickly; it must not call Close, which waits
// for it. At most opts.MaxInFlight deliveries (default 1024) are
// unacknowledged at a time. See the package documentation for
// acknowledgements and redelivery.
func (b *Bus) Subscribe(ctx context.Context, opts rpcbus.SubscribeOptions, h rpcbus.Handler) (rpcbus.Subscription, error) {
	if b.open.Closed() {
		return nil, rpcbus.ErrClosed
	}
	switch {
	case len(opts.Topics) == 0:
		return nil, errors.New("redis: subscribe: no topics")
	case opts.Group == "":
		return nil, fmt.Errorf("redis: subscribe to %q: no group", opts.Topics)
	case opts.MaxInFlight < 0:
		return nil, fmt.Errorf("redis: subscribe to %q: MaxInFlight %d is negative", opts.Topics, opts.MaxInFlight)
	case h == nil:
		return nil, fmt.Errorf("redis: subscribe to %q: nil handler", opts.Topics)
	}
	maxInFlight := opts.MaxInFlight
	if maxInFlight == 0 {
		maxInFlight = rpcbus.DefaultMaxInFlight
	}
	host, _ := os.Hostname()
	claimIdle := time.Duration(b.o.ClaimIdle)
	s := &subscription{
		bus:          b,
		group:        opts.Group,
		newGroupAge:  opts.NewGroupMaxAge,
		consumer:     fmt.Sprintf("%s.%d.%s", host, os.Getpid(), randomSuffix(8)),
		topics:       slices.Clone(opts.Topics),
		index:        make(map[string]int, len(opts.Topics)),
		h:            h,
		maxInFlight:  maxInFlight,
		claimIdle:    claimIdle,
		claimEvery:   min(claimIdle/2, maxClaimEvery),
		refreshEvery: claimIdle / 3,
		block:        time.Duration(b.o.Block),
		runDone:      make(chan struct{}),
		ackKick:      make(chan struct{}, 1),
		ackDone:      make(chan struct{}),
		held:         make([]map[string]struct{}, len(opts.Topics)),
		acks:         make([][]string, len(opts.Topics)),
		cursors:      make([]string, len(opts.Topics)),
	}
	s.stop, s.halt = context.WithCancel(context.Background())
	s.ackStop, s.ackHalt = context.WithCancel(context.Background())
	for i, t := range s.topics {
		k := b.o.key(t)
		s.keys = append(s.keys, k)
		s.index[k] = i
		s.held[i] = make(map[string]struct{})
		s.cursors[i] = "0-0"
	}
	s.streams = append(slices.Clone(s.keys), slices.Repeat([]string{">"}, len(s.keys))...)
	err := b.retry(ctx, func() error { return s.createGroups(ctx, b.rdb) })
	if err != nil {
		return nil, fmt.Errorf("redis: subscribe to %q as group %q: %w", opts.Topics, opts.Group, err)
	}
	s.rd = goredis.NewClient(b.o.clientOptions(b.addr, true, &s.connID))
	if !b.open.Add(s, nil) {
		_ = s.rd.Close()
		return nil, rpcbus.ErrClosed
	}
	go s.run()
	go s.acker()
	return s, nil
}

// subscription is a consumer of a group, delivering to a handler.
//
// Its run goroutine reads new entries with XREADGROUP on a connection of
// its own, claims entries idle for claim_idle (those of members that died,
// or closed without acknowledging them) with XAUTOCLAIM, and keeps its own
// unacknowledged entries from looking idle by claiming them again for
// itself every claim_idle/3. Its acker goroutine sends acknowledgements in
// batches.
type subscription struct {
	bus      *Bus
	rd       *goredis.Client // the run goroutine's connection
	connID   atomic.Int64    // its CLIENT ID, for CLIENT UNBLOCK
	group    string
	consumer string
	// newGroupAge is SubscribeOptions.NewGroupMaxAge: where a group this
	// subscription creates starts.
	newGroupAge time.Duration
	topics      []string
	keys        []string       // stream keys, as topics
	index       map[string]int // key → index in topics
	streams     []string       // XREADGROUP arguments for every topic
	h           rpcbus.Handler

	maxInFlight  int
	claimIdle    time.Duration
	claimEvery   time.Duration
	refreshEvery time.Duration
	block        time.Duration

	stop    context.Context // ends at Close: stop reading
	halt    context.CancelFunc
	runDone chan struct{}
	ackKick chan struct{}
	ackStop context.Context // ends once Close has its acknowledgements
	ackHalt context.CancelFunc
	ackDone chan struct{}
	closed  atomic.Bool

	// Owned by the run goroutine.
	backlog []backlogEntry // read, not yet delivered
	cursors []string       // of XAUTOCLAIM, by topic

	mu       sync.Mutex
	held     []map[string]struct{} // by topic: delivered, not acknowledged
	acks     [][]string            // by topic: acknowledged, XACK not yet sent
	inflight int                   // entries in held
	unsent   int                   // entries in acks
	changed  chan struct{}         // closed at the next change, for whoever waits
	released bool                  // handed back: acknowledgements are ignored
}

// createGroups creates the group on every stream, reading from its start,
// or with newGroupAge from the first entry added since newGroupAge ago (by
// the entry ids, which are the Redis server's clock in ms); a group that
// exists is left as it is.
func (s *subscription) createGroups(ctx context.Context, c *goredis.Client) error {
	start := "0"
	if s.newGroupAge > 0 {
		// The group's last-delivered id, the last one an entry of the
		// millisecond before can have: it reads the entries after it.
		start = strconv.FormatInt(time.Now().Add(-s.newGroupAge).UnixMilli()-1, 10) + "-18446744073709551615"
	}
	cmds, err := c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, k := range s.keys {
			p.XGroupCreateMkStream(ctx, k, s.group, start)
		}
		return nil
	})
	if err == nil {
		return nil
	}
	busy := false
	for _, c := range cmds {
		if e := c.Err(); e != nil && !goredis.HasErrorPrefix(e, "BUSYGROUP") {
			return e
		} else if e != nil {
			busy = true
		}
	}
	if busy {
		return nil
	}
	return err // the pipeline did not run: AUTH failed, say
}

func (s *subscription) stopping() bool { return s.stop.Err() != nil }

// capacity is how many more entries may be delivered now.
func (s *subscription) capacity() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxInFlight - s.inflight - s.unsent
}

// waitLocked returns a channel closed at the next acknowledgement or sent
// XACK. s.mu must be held.
func (s *subscription) waitLocked() <-chan struct{} {
	if s.changed == nil {
		s.changed = make(chan struct{})
	}
	return s.changed
}

func (s *subscription) signalLocked() {
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
}

// run is the subscription's one delivering goroutine.
func (s *subscription) run() {
	defer close(s.runDone)
	ctx := context.Background()
	var (
		nextClaim   time.Time // at once: entries a member left may be waiting
		nextRefresh = time.Now().Add(s.refreshEvery)
		bo          = newBackoff()
		failed      bool // the last attempt: pause before the next
	)
	for !s.stopping() {
		if failed && !bo.Wait(s.stop) {
			return
		}
		var err error
		switch now := time.Now(); {
		case !now.Before(nextRefresh):
			if err = s.refresh(ctx, s.rd, s.backlog); err == nil {
				nextRefresh = now.Add(s.refreshEvery)
			}
		case s.capacity() <= 0:
			s.waitCapacity(time.Until(nextRefresh))
			continue
		case !now.Before(nextClaim):
			if err = s.claim(ctx); err == nil {
				nextClaim = time.Now().Add(s.claimEvery)
			}
		default:
			block := min(s.block, time.Until(nextClaim), time.Until(nextRefresh))
			err = s.read(ctx, max(block, time.Millisecond))
		}
		switch {
		case err == nil:
			failed = false
			bo.Reset()
		case goredis.HasErrorPrefix(err, "NOGROUP"):
			// The stream or group is gone: deleted, or the server
			// restarted without persistence. Create them again, as
			// Subscribe did; messages published since are read.
			if err := s.createGroups(ctx, s.rd); err != nil {
				failed = true
			}
		default:
			failed = true
		}
	}
}

// waitCapacity waits at most d for an acknowledgement to make room.
func (s *subscription) waitCapacity(d time.Duration) {
	s.mu.Lock()
	w := s.waitLocked()
	s.mu.Unlock()
	if s.capacity() > 0 {
		return
	}
	t := time.NewTimer(max(d, 0))
	defer t.Stop()
	select {
	case <-w:
	case <-t.C:
	case <-s.stop.Done():
	}
}

// read delivers what the last read left over, if anything; otherwise it
// reads new entries of every topic, waiting at most block for one, and
// delivers as many as MaxInFlight allows. COUNT applies to each stream, so
// a read may return more (one per topic at most, when fewer slots are free
// than there are topics): the rest wait in the backlog, pending for this
// consumer, until slots free up.
func (s *subscription) read(ctx context.Context, block time.Duration) error {
	if len(s.backlog) > 0 {
		s.deliverBacklog()
		return nil
	}
	res, err := s.rd.XReadGroup(ctx, &goredis.XReadGroupArgs{
		Group:    s.group,
		Consumer: s.consumer,
		Streams:  s.streams,
		Count:    int64(max(1, s.capacity()/len(s.keys))),
		Block:    block,
	}).Result()
	if errors.Is(err, goredis.Nil) {
		return nil
	}
	if err != nil {
		return err
	}
	if s.stopping() {
		return nil // still pending for this consumer: Close hands them back
	}
	for _, st := range res {
		ti := s.index[st.Stream]
		for _, xm := range st.Messages {
			s.backlog = append(s.backlog, backlogEntry{ti, xm})
		}
	}
	s.deliverBacklog()
	return nil
}

// backlogEntry is an entry read and not yet delivered.
type backlogEntry struct {
	ti int
	xm goredis.XMessage
}

// deliverBacklog delivers the backlog, oldest first, while MaxInFlight
// allows.
func (s *subscription) deliverBacklog() {
	i := 0
	for ; i < len(s.backlog) && s.capacity() > 0 && !s.stopping(); i++ {
		s.deliver(s.backlog[i].ti, s.backlog[i].xm, false)
	}
	n := copy(s.backlog, s.backlog[i:])
	clear(s.backlog[n:])
	s.backlog = s.backlog[:n]
}

// claim takes over entries of the group idle for claim_idle, on every
// topic, as many as may be delivered, and delivers them.
func (s *subscription) claim(ctx context.Context) error {
	for ti, key := range s.keys {
		for range claimCallsPerPass {
			n := s.capacity()
			if n <= 0 || s.stopping() {
				return nil
			}
			msgs, next, err := s.rd.XAutoClaim(ctx, &goredis.XAutoClaimArgs{
				Stream:   key,
				Group:    s.group,
				Consumer: s.consumer,
				MinIdle:  s.claimIdle,
				Start:    s.cursors[ti],
				Count:    int64(n),
			}).Result()
			if err != nil {
				return err
			}
			s.cursors[ti] = next
			for _, xm := range msgs {
				s.deliver(ti, xm, true)
			}
			if next == "0-0" {
				break
			}
		}
	}
	return nil
}

// deliver hands entry xm of topic ti to the handler. A claimed entry this
// subscription holds already (its claim_idle passed while it was held) is
// not delivered twice; one deleted from the stream since it was delivered
// is only acknowledged.
func (s *subscription) deliver(ti int, xm goredis.XMessage, claimed bool) {
	id := xm.ID
	s.mu.Lock()
	if claimed {
		if _, dup := s.held[ti][id]; dup || slices.Contains(s.acks[ti], id) {
			s.mu.Unlock()
			return
		}
	}
	if xm.Values == nil {
		s.acks[ti] = append(s.acks[ti], id)
		s.unsent++
		s.mu.Unlock()
		s.kickAcker()
		return
	}
	s.held[ti][id] = struct{}{}
	s.inflight++
	s.mu.Unlock()
	s.h(rpcbus.NewDelivery(decode(s.topics[ti], xm.Values), func() { s.ack(ti, id) }))
}

func (s *subscription) ack(ti int, id string) {
	s.mu.Lock()
	if _, ok := s.held[ti][id]; !ok || s.released {
		s.mu.Unlock()
		return
	}
	delete(s.held[ti], id)
	s.inflight--
	s.acks[ti] = append(s.acks[ti], id)
	s.unsent++
	s.signalLocked()
	s.mu.Unlock()
	s.kickAcker()
}

func (s *subscription) kickAcker() {
	select {
	case s.ackKick <- struct{}{}:
	default:
	}
}

// acker sends the acknowledgements as they come, in one batch for all
// those that came while the previous batch was on the wire.
func (s *subscription) acker() {
	defer close(s.ackDone)
	bo := newBackoff()
	for {
		select {
		case <-s.ackStop.Done():
			return
		case <-s.ackKick:
		}
		if err := s.flushAcks(context.Background()); err != nil {
			if !bo.Wait(s.ackStop) {
				return
			}
			s.kickAcker()
			continue
		}
		bo.Reset()
	}
}

// flushAcks sends the acknowledgements not yet sent. If that fails they
// are kept, to be sent again.
func (s *subscription) flushAcks(ctx context.Context) error {
	s.mu.Lock()
	if s.unsent == 0 {
		s.mu.Unlock()
		return nil
	}
	batch, n := s.acks, s.unsent
	s.acks = make([][]string, len(s.keys))
	s.mu.Unlock()

	err := s.bus.batch.doAll(ctx, s.xacks(ctx, batch))
	s.mu.Lock()
	defer s.mu.Unlock()
	// NOGROUP: the group is gone, and its pending entries with it.
	if err != nil && !goredis.HasErrorPrefix(err, "NOGROUP") {
		for ti := range batch {
			s.acks[ti] = append(batch[ti], s.acks[ti]...)
		}
		return err
	}
	s.unsent -= n
	s.signalLocked()
	return nil
}

// xacks returns the XACK commands of batch, by topic.
func (s *subscription) xacks(ctx context.Context, batch [][]string) []goredis.Cmder {
	cmds := make([]goredis.Cmder, 0, 1)
	for ti, ids := range batch {
		if len(ids) == 0 {
			continue
		}
		args := make([]any, 0, 3+len(ids))
		args = append(args, "xack", s.keys[ti], s.group)
		for _, id := range ids {
			args = append(args, id)
		}
		cmds = append(cmds, goredis.NewIntCmd(ctx, args...))
	}
	return cmds
}

// refresh claims the entries the subscription holds for itself again,
// which resets their idle time, so that no other member takes them over
// while they are being handled, or wait in the backlog (backlog is nil when
// the run goroutine is not the caller).
func (s *subscription) refresh(ctx context.Context, c *goredis.Client, backlog []backlogEntry) error {
	batch := make([][]string, len(s.keys))
	total := len(backlog)
	for _, e := range backlog {
		batch[e.ti] = append(batch[e.ti], e.xm.ID)
	}
	s.mu.Lock()
	for ti, ids := range s.held {
		for id := range ids {
			batch[ti] = append(batch[ti], id)
		}
		total += len(ids)
	}
	s.mu.Unlock()
	if total == 0 {
		return nil
	}
	_, err := c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for ti, ids := range batch {
			if len(ids) > 0 {
				p.XClaimJustID(ctx, &goredis.XClaimArgs{Stream: s.keys[ti], Group: s.group, Consumer: s.consumer, Messages: ids})
			}
		}
		return nil
	})
	return err
}

// Close stops reading (at once, or within a second if the server cannot be
// reached), waits until every delivery has been acknowledged or
// ctx is done (keeping the held entries from being claimed by other
// members meanwhile), sends the acknowledgements, and hands what is still
// unacknowledged back to the group: other members, present or future,
// claim it at once (within a second). Acknowledgements after that are
// ignored. If ctx ended first, the error wraps rpcbus.ErrUnacknowledged. A second
// Close returns rpcbus.ErrClosed.
func (s *subscription) Close(ctx context.Context) error {
	if s.closed.Swap(true) {
		return rpcbus.ErrClosed
	}
	s.bus.open.Remove(s)
	s.halt()
	s.bus.unblock(&s.connID, s.rd, s.runDone)

	var errs []error
	if !s.drain(ctx) {
		s.mu.Lock()
		n := s.inflight
		s.mu.Unlock()
		errs = append(errs, fmt.Errorf("redis: close subscription: %w: %d at close: %w", rpcbus.ErrUnacknowledged, n, ctx.Err()))
	}
	s.ackHalt()
	<-s.ackDone

	// Past ctx if need be: what was acknowledged is sent, and the rest
	// handed back, so that the next member need not wait for claim_idle.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
	defer cancel()
	s.mu.Lock()
	s.released = true
	s.mu.Unlock()
	if err := s.flushAcks(fctx); err != nil {
		errs = append(errs, wrap(err, "acknowledging at close"))
	}
	if err := s.handBack(fctx); err != nil {
		errs = append(errs, err)
	}
	_ = s.rd.Close()
	return errors.Join(errs...)
}

// drain waits until nothing is in flight or ctx is done, refreshing the
// held entries as run did.
func (s *subscription) drain(ctx context.Context) bool {
	tick := time.NewTicker(s.refreshEvery)
	defer tick.Stop()
	for {
		s.mu.Lock()
		if s.inflight == 0 {
			s.mu.Unlock()
			return true
		}
		w := s.waitLocked()
		s.mu.Unlock()
		select {
		case <-w:
		case <-tick.C:
			_ = s.refresh(ctx, s.bus.rdb, nil)
		case <-ctx.Done():
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.inflight == 0
		}
	}
}

// handBack runs the handBack script on every topic.
func (s *subscription) handBack(ctx context.Context) error {
	var errs []error
	for _, k := range s.keys {
		err := handBack.Run(ctx, s.bus.rdb, []string{k}, s.group, s.consumer, orphaned).Err()
		if err != nil && !goredis.HasErrorPrefix(err, "NOGROUP") {
			errs = append(errs, wrap(err, "handing back the unacknowledged entries of %s", k))
		}
	}
	return errors.Join(errs...)
}

// CloseNow is Close for Bus.Close: it does not wait for acknowledgements.
func (s *subscription) CloseNow() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = s.Close(ctx)
}
