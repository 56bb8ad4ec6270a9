package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/nextpkg/vrpc/internal/backoff"
	"github.com/nextpkg/vrpc/rpcbus"
)

const (
	// trackedPerInFlight bounds the offsets a subscription remembers: the
	// unacknowledged ones plus those acknowledged after the oldest
	// unacknowledged one, which cannot be committed yet. When a delivery
	// stays unacknowledged for long, polling stops after this many times
	// MaxInFlight further messages instead of remembering them without end.
	trackedPerInFlight = 64
	// commitInterval is how often acknowledged offsets are committed
	// under load; idleCommitDelay how soon once nothing is in flight.
	commitInterval  = time.Second
	idleCommitDelay = 100 * time.Millisecond
	// errorPause is how long polling pauses after a poll with only errors.
	errorPause = 100 * time.Millisecond
)

// Subscribe creates the topics of opts that do not exist, joins opts.Group
// and returns once the group has given the subscription its first
// assignment (or ctx is done). Messages already in the topics when the group
// was first formed are delivered too, so requests published before the first
// server joined are served.
//
// h is called from one goroutine per subscription and must return
// quickly: the group cannot rebalance while it runs, and Close waits for it
// (so h must not call Close). At most opts.MaxInFlight deliveries (default
// 1024) are unacknowledged at a time; polling waits while that many are.
// See the package documentation for how acknowledgements become commits.
func (b *Bus) Subscribe(ctx context.Context, opts rpcbus.SubscribeOptions, h rpcbus.Handler) (rpcbus.Subscription, error) {
	if b.open.Closed() {
		return nil, rpcbus.ErrClosed
	}
	switch {
	case len(opts.Topics) == 0:
		return nil, errors.New("kafka: subscribe: no topics")
	case opts.Group == "":
		return nil, fmt.Errorf("kafka: subscribe to %q: no group", opts.Topics)
	case opts.MaxInFlight < 0:
		return nil, fmt.Errorf("kafka: subscribe to %q: MaxInFlight %d is negative", opts.Topics, opts.MaxInFlight)
	case h == nil:
		return nil, fmt.Errorf("kafka: subscribe to %q: nil handler", opts.Topics)
	}
	if err := b.CreateTopics(ctx, opts.Topics...); err != nil {
		return nil, err
	}
	maxInFlight := opts.MaxInFlight
	if maxInFlight == 0 {
		maxInFlight = rpcbus.DefaultMaxInFlight
	}
	s := &subscription{
		bus:           b,
		h:             h,
		maxInFlight:   maxInFlight,
		maxTracked:    trackedPerInFlight * maxInFlight,
		revokeTimeout: time.Duration(b.o.RevokeTimeout),
		parts:         make(map[topicPartition]*partition),
		pollDone:      make(chan struct{}),
		commitStop:    make(chan struct{}),
		commitDone:    make(chan struct{}),
		idle:          make(chan struct{}, 1),
		joined:        make(chan struct{}),
		refused:       make(chan error, 1),
		topics:        opts.Topics,
		group:         opts.Group,
	}
	s.pollCtx, s.stopPoll = context.WithCancel(context.Background())
	kopts := append(b.o.clientOpts(b.brokers, b.auth), b.o.consumerOpts()...)
	kopts = append(kopts,
		kgo.ConsumerGroup(opts.Group),
		kgo.ConsumeTopics(opts.Topics...),
		kgo.ConsumeResetOffset(resetOffset(opts.NewGroupMaxAge)),
		kgo.DisableAutoCommit(),
		// No rebalance between a poll and the registration of what it
		// returned: see poll.
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(s.onAssigned),
		kgo.OnPartitionsRevoked(s.onRevoked),
		kgo.OnPartitionsLost(s.onLost),
		kgo.SessionTimeout(time.Duration(b.o.SessionTimeout)),
		kgo.HeartbeatInterval(time.Duration(b.o.HeartbeatInterval)),
		kgo.RebalanceTimeout(rebalanceTimeout),
	)
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		s.stopPoll()
		return nil, fmt.Errorf("kafka: subscribe to %q as group %q: %w", opts.Topics, opts.Group, err)
	}
	s.cl = cl
	if !b.open.Add(s, nil) {
		s.stopPoll()
		cl.Close()
		return nil, rpcbus.ErrClosed
	}
	go s.poll()
	go s.committer()
	var refused error
	select {
	case <-s.joined:
		return s, nil
	case <-s.pollDone: // Bus.Close closed it
		return nil, rpcbus.ErrClosed
	case refused = <-s.refused:
	case <-b.auth.refused():
		refused = b.refusal(errAuthClosed, opRead, opts.Topics[0], opts.Group)
	case <-ctx.Done():
		done, cancel := context.WithCancel(context.Background())
		cancel()
		_ = s.Close(done)
		return nil, fmt.Errorf("kafka: subscribe to %q as group %q: joining the group: %w (%w: no group coordinator answered)", opts.Topics, opts.Group, ctx.Err(), rpcbus.ErrUnavailable)
	}
	done, cancel := context.WithCancel(context.Background())
	cancel()
	_ = s.Close(done)
	return nil, fmt.Errorf("kafka: subscribe to %q as group %q: %w", opts.Topics, opts.Group, refused)
}

type topicPartition struct {
	topic     string
	partition int32
}

// subscription is a group member delivering to a handler.
//
// Every delivery is recorded in its partition's window, in offset order.
// An acknowledgement marks its entry; the acknowledged entries at the front
// of a window leave it and move the partition's commit position past them,
// so a commit never skips an unacknowledged offset.
type subscription struct {
	bus           *Bus
	cl            *kgo.Client
	h             rpcbus.Handler
	maxInFlight   int
	maxTracked    int
	revokeTimeout time.Duration

	pollCtx    context.Context // canceled by Close: stops polling
	stopPoll   context.CancelFunc
	pollDone   chan struct{}
	commitStop chan struct{}
	commitDone chan struct{}
	idle       chan struct{} // nothing in flight: commit soon
	joined     chan struct{}
	joinOnce   sync.Once
	refused    chan error // the first refusal of the brokers (ACLs), for Subscribe
	topics     []string
	group      string
	closed     atomic.Bool

	// commitMu serializes taking commit positions and committing them, so
	// that an older position never lands after a newer one, and a
	// partition is not dropped while its commit is on the wire.
	commitMu sync.Mutex

	mu       sync.Mutex
	parts    map[topicPartition]*partition // owned partitions
	inflight int                           // unacknowledged deliveries
	tracked  int                           // window entries of owned partitions
	changed  chan struct{}                 // closed at the next ack, for whoever waits
	closing  bool
}

// partition is the delivery window of one owned partition.
type partition struct {
	dead      bool    // revoked or lost: acks are ignored
	ring      []entry // window, oldest first from head
	head      int
	n         int
	base      uint64 // sequence number of the oldest entry
	unacked   int
	commit    kgo.EpochOffset // end of the acknowledged prefix; Offset -1: none
	committed int64           // last commit accepted
}

type entry struct {
	offset int64
	epoch  int32
	acked  bool
}

func (p *partition) push(e entry) (seq uint64) {
	if p.n == len(p.ring) {
		grown := make([]entry, max(16, 2*len(p.ring)))
		for i := range p.n {
			grown[i] = p.ring[(p.head+i)%len(p.ring)]
		}
		p.ring, p.head = grown, 0
	}
	p.ring[(p.head+p.n)%len(p.ring)] = e
	p.n++
	return p.base + uint64(p.n-1)
}

// poll is the subscription's one delivering goroutine.
//
// It asks for no more records than it may deliver at once, so it never
// holds records while waiting for acknowledgements. With
// BlockRebalanceOnPoll, no rebalance runs between a poll and
// AllowRebalance: every record it returned is registered in the window of a
// partition the member still owns, and OnPartitionsRevoked sees all of them.
func (s *subscription) poll() {
	defer close(s.pollDone)
	for {
		n, ok := s.capacity()
		if !ok {
			return
		}
		fs := s.cl.PollRecords(s.pollCtx, n)
		if s.pollCtx.Err() != nil || fs.IsClientClosed() {
			// Undelivered records are not committed: another member
			// gets them.
			s.cl.AllowRebalance()
			return
		}
		// Fetch errors are retried by the client; records are not lost.
		// Refusals (ACLs) end a Subscribe still waiting to join.
		fs.EachError(s.noteRefusal)
		fs.EachRecord(s.deliver)
		s.cl.AllowRebalance()
		// A poll that returned only errors waits a little, so that a
		// lasting one (a deleted topic, say) does not spin the loop.
		if fs.NumRecords() == 0 && fs.Err() != nil && !backoff.Sleep(s.pollCtx, errorPause) {
			return
		}
	}
}

// noteRefusal passes a refusal of the brokers (a missing ACL) to Subscribe.
func (s *subscription) noteRefusal(topic string, _ int32, err error) {
	if topic == "" {
		topic = s.topics[0]
	}
	if r := s.bus.refusal(err, opRead, topic, s.group); r != nil {
		select {
		case s.refused <- r:
		default:
		}
	}
}

// capacity waits until a delivery may be made and says how many.
func (s *subscription) capacity() (int, bool) {
	for {
		s.mu.Lock()
		n := min(s.maxInFlight-s.inflight, s.maxTracked-s.tracked)
		if n > 0 {
			s.mu.Unlock()
			return n, true
		}
		w := s.waitLocked()
		s.mu.Unlock()
		select {
		case <-w:
		case <-s.pollCtx.Done():
			return 0, false
		}
	}
}

// waitLocked returns a channel closed at the next acknowledgement or
// revocation. s.mu must be held.
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

// waitUntil waits until cond, evaluated with s.mu held, is true or ctx is
// done, and returns cond's last value.
func (s *subscription) waitUntil(ctx context.Context, cond func() bool) bool {
	for {
		s.mu.Lock()
		if cond() {
			s.mu.Unlock()
			return true
		}
		w := s.waitLocked()
		s.mu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
			s.mu.Lock()
			defer s.mu.Unlock()
			return cond()
		}
	}
}

func (s *subscription) deliver(r *kgo.Record) {
	k := topicPartition{r.Topic, r.Partition}
	s.mu.Lock()
	p := s.parts[k]
	if p == nil {
		p = &partition{commit: kgo.EpochOffset{Epoch: -1, Offset: -1}, committed: -1}
		s.parts[k] = p
	}
	seq := p.push(entry{offset: r.Offset, epoch: r.LeaderEpoch})
	p.unacked++
	s.inflight++
	s.tracked++
	s.mu.Unlock()

	m := rpcbus.Message{Topic: r.Topic, Key: r.Key, Value: r.Value}
	if len(r.Headers) > 0 {
		m.Headers = make(map[string]string, len(r.Headers))
		for _, h := range r.Headers {
			m.Headers[h.Key] = string(h.Value)
		}
	}
	s.h(rpcbus.NewDelivery(m, func() { s.ack(p, seq) }))
}

func (s *subscription) ack(p *partition, seq uint64) {
	s.mu.Lock()
	if !p.dead {
		if seq < p.base { // acknowledged already
			s.mu.Unlock()
			return
		}
		i := int(seq - p.base)
		e := &p.ring[(p.head+i)%len(p.ring)]
		if e.acked {
			s.mu.Unlock()
			return
		}
		e.acked = true
		for p.n > 0 && p.ring[p.head].acked {
			e := p.ring[p.head]
			p.commit = kgo.EpochOffset{Epoch: e.epoch, Offset: e.offset + 1}
			p.head = (p.head + 1) % len(p.ring)
			p.n--
			p.base++
			s.tracked--
		}
	}
	p.unacked--
	s.inflight--
	idle := s.inflight == 0
	s.signalLocked()
	s.mu.Unlock()
	if idle {
		select {
		case s.idle <- struct{}{}:
		default:
		}
	}
}

// dropLocked forgets the partition k: acks of its deliveries are ignored
// from now on, and its messages not committed go to the next owner.
func (s *subscription) dropLocked(k topicPartition) {
	if p := s.parts[k]; p != nil {
		p.dead = true
		s.tracked -= p.n
		p.ring = nil
		p.n = 0
		delete(s.parts, k)
		s.signalLocked()
	}
}

func (s *subscription) onAssigned(context.Context, *kgo.Client, map[string][]int32) {
	s.joinOnce.Do(func() { close(s.joined) })
}

// onRevoked runs when the group takes partitions away, before it hands
// them to another member: it waits (up to revoke_timeout) for their
// deliveries to be acknowledged and commits, so that the next owner starts
// after them. Acknowledgements arriving later are ignored; those messages
// are delivered again.
func (s *subscription) onRevoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	var keys []topicPartition
	for t, ps := range revoked {
		for _, p := range ps {
			keys = append(keys, topicPartition{t, p})
		}
	}
	if len(keys) == 0 {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, s.revokeTimeout)
	s.waitUntil(wctx, func() bool {
		if s.closing { // Close does its own waiting
			return true
		}
		for _, k := range keys {
			if p := s.parts[k]; p != nil && p.unacked > 0 {
				return false
			}
		}
		return true
	})
	cancel()
	cctx, cancel := context.WithTimeout(ctx, s.revokeTimeout)
	defer cancel()
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	_ = s.commit(cctx) // if it fails, the next owner sees some messages again
	s.mu.Lock()
	for _, k := range keys {
		s.dropLocked(k)
	}
	s.mu.Unlock()
}

// onLost runs when the member was fenced out of the group: its partitions
// belong to others already, and a commit would be refused.
func (s *subscription) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for t, ps := range lost {
		for _, p := range ps {
			s.dropLocked(topicPartition{t, p})
		}
	}
}

// commit commits the acknowledged prefix of every owned partition that
// moved since its last commit. s.commitMu must be held.
func (s *subscription) commit(ctx context.Context) error {
	type pending struct {
		p      *partition
		offset int64
	}
	var (
		offsets map[string]map[int32]kgo.EpochOffset
		sent    map[topicPartition]pending
	)
	s.mu.Lock()
	for k, p := range s.parts {
		if p.commit.Offset <= p.committed {
			continue
		}
		if offsets == nil {
			offsets = make(map[string]map[int32]kgo.EpochOffset)
			sent = make(map[topicPartition]pending)
		}
		if offsets[k.topic] == nil {
			offsets[k.topic] = make(map[int32]kgo.EpochOffset)
		}
		offsets[k.topic][k.partition] = p.commit
		sent[k] = pending{p, p.commit.Offset}
	}
	s.mu.Unlock()
	if offsets == nil {
		return nil
	}
	var errs []error
	s.cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			errs = append(errs, err)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, t := range resp.Topics {
			for _, rp := range t.Partitions {
				if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
					errs = append(errs, fmt.Errorf("%s/%d: %w", t.Topic, rp.Partition, err))
					continue
				}
				if ps, ok := sent[topicPartition{t.Topic, rp.Partition}]; ok {
					ps.p.committed = max(ps.p.committed, ps.offset)
				}
			}
		}
	})
	if len(errs) > 0 {
		return fmt.Errorf("kafka: committing offsets: %w", errors.Join(errs...))
	}
	return nil
}

// committer commits every commitInterval, and idleCommitDelay after the
// subscription runs out of work, so that little is delivered twice after a
// crash.
func (s *subscription) committer() {
	defer close(s.commitDone)
	tick := time.NewTicker(commitInterval)
	defer tick.Stop()
	idleTimer := time.NewTimer(idleCommitDelay)
	idleTimer.Stop()
	defer idleTimer.Stop()
	var idleC <-chan time.Time
	for {
		select {
		case <-s.commitStop:
			return
		case <-s.idle:
			if idleC == nil {
				idleTimer.Reset(idleCommitDelay)
				idleC = idleTimer.C
			}
			continue
		case <-idleC:
			idleC = nil
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(s.pollCtx, commitInterval)
		s.commitMu.Lock()
		_ = s.commit(ctx) // retried at the next turn: the position stays ahead
		s.commitMu.Unlock()
		cancel()
	}
}

// Close stops polling, waits until every delivery has been acknowledged or
// ctx is done, commits the acknowledged prefix of each partition and leaves
// the group; the rest is delivered again to another member. If ctx ended
// first, the error wraps rpcbus.ErrUnacknowledged. A second Close returns
// rpcbus.ErrClosed.
func (s *subscription) Close(ctx context.Context) error {
	if s.closed.Swap(true) {
		return rpcbus.ErrClosed
	}
	s.bus.open.Remove(s)
	s.mu.Lock()
	s.closing = true
	s.signalLocked() // a revocation waiting for acks leaves that to us
	s.mu.Unlock()
	s.stopPoll()
	<-s.pollDone

	var errs []error
	if !s.waitUntil(ctx, func() bool { return s.inflight == 0 }) {
		s.mu.Lock()
		n := s.inflight
		s.mu.Unlock()
		errs = append(errs, fmt.Errorf("kafka: close subscription: %w: %d at close: %w", rpcbus.ErrUnacknowledged, n, ctx.Err()))
	}
	close(s.commitStop)
	<-s.commitDone

	// Past ctx if need be: committing what was acknowledged and leaving
	// the group promptly spares the next member duplicates and a wait
	// for the session timeout.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
	defer cancel()
	s.commitMu.Lock()
	if err := s.commit(fctx); err != nil {
		errs = append(errs, err)
	}
	s.commitMu.Unlock()
	if err := s.cl.LeaveGroupContext(fctx); err != nil {
		errs = append(errs, fmt.Errorf("kafka: leaving the group: %w", err))
	}
	s.cl.CloseAllowingRebalance()

	s.mu.Lock()
	for k := range s.parts {
		s.dropLocked(k)
	}
	s.mu.Unlock()
	return errors.Join(errs...)
}

// CloseNow is Close for Bus.Close: it does not wait for acknowledgements.
func (s *subscription) CloseNow() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = s.Close(ctx)
}

// resetOffset is where a group without a committed offset starts (or one
// whose committed offset the brokers no longer keep): at the oldest
// message, not the newest, or with maxAge at the first message published
// since maxAge ago (its timestamp's offset; the end if there is none).
func resetOffset(maxAge time.Duration) kgo.Offset {
	if maxAge <= 0 {
		return kgo.NewOffset().AtStart()
	}
	return kgo.NewOffset().AfterMilli(time.Now().Add(-maxAge).UnixMilli())
}
