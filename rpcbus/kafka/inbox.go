package kafka

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/nextpkg/vrpc/internal/backoff"
	"github.com/nextpkg/vrpc/rpcbus"
)

// Inbox opens a reply address of its own: the topic name, a dot and a
// random suffix, created with the partitions setting and retention.ms of
// reply_retention. It reads the end offset of every partition and consumes
// from exactly there with a client of its own, outside any group, so once
// Inbox returns every message published to the address afterwards reaches
// h. Inboxes with one name (client instances sharing a client id) each
// have their own topic. Close deletes it. The topic of a process that died
// stays, its replies deleted by the brokers after reply_retention, until
// an inbox of the same name opens: an open inbox writes a keepalive record
// to its topic every reply_retention/4, and a new inbox deletes the topics
// of its name that have had none for reply_retention.
//
// h is called from the inbox's one goroutine, in offset order within a
// partition; it must not call Close, which waits for it.
func (b *Bus) Inbox(ctx context.Context, name string, h func(m *rpcbus.Message)) (rpcbus.Inbox, error) {
	if b.open.Closed() {
		return nil, rpcbus.ErrClosed
	}
	if name == "" {
		return nil, errors.New("kafka: inbox: empty name")
	}
	if h == nil {
		return nil, fmt.Errorf("kafka: inbox %q: nil handler", name)
	}
	var suffix [suffixBytes]byte
	_, _ = rand.Read(suffix[:])
	prefix := name + "."
	name = prefix + hex.EncodeToString(suffix[:])
	retention := strconv.FormatInt(time.Duration(b.o.ReplyRetention).Milliseconds(), 10)
	if err := b.createTopics(ctx, map[string]*string{"retention.ms": &retention}, name); err != nil {
		return nil, inboxACLHint(err, prefix)
	}
	start, err := b.endOffsets(ctx, name)
	if err != nil {
		_ = b.deleteTopic(name)
		return nil, inboxACLHint(err, prefix)
	}
	cl, err := kgo.NewClient(append(append(b.o.clientOpts(b.brokers, b.auth), b.o.consumerOpts()...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{name: start}),
		// Only if the log was truncated past our start: lose nothing.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)...)
	if err != nil {
		_ = b.deleteTopic(name)
		return nil, fmt.Errorf("kafka: inbox %q: %w", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ib := &inbox{bus: b, prefix: prefix, name: name, cl: cl, h: h, ctx: ctx, cancel: cancel}
	if !b.open.Add(ib, nil) {
		cancel()
		cl.Close()
		_ = b.deleteTopic(name)
		return nil, rpcbus.ErrClosed
	}
	ib.wg.Go(ib.run)
	ib.wg.Go(ib.keepalive)
	return ib, nil
}

// inboxACLHint adds to a refusal for missing ACLs that an inbox's topics
// are new each time: the ACLs go on their prefix.
func inboxACLHint(err error, prefix string) error {
	if !errors.Is(err, rpcbus.ErrForbidden) {
		return err
	}
	return fmt.Errorf("%w (reply topics are named %s and a random suffix: grant Create, Describe, Read, Write and Delete "+
		"on the prefix, with --resource-pattern-type prefixed --topic %s)", err, prefix, prefix)
}

// keepaliveHeader marks the records an inbox writes to its own topic to
// show it is alive; the inbox does not deliver them.
const keepaliveHeader = "vrpc-inbox-keepalive"

// keepalive deletes the topics of dead inboxes of the same name, then
// writes a keepalive record to the inbox's topic now and every
// reply_retention/4. A record not yet sent when the inbox closes is
// dropped (its context ends).
func (ib *inbox) keepalive() {
	ib.bus.sweepInboxes(ib.ctx, ib.prefix, ib.name)
	every := time.Duration(ib.bus.o.ReplyRetention) / 4
	for {
		ctx, cancel := context.WithTimeout(ib.ctx, every)
		rec := &kgo.Record{Topic: ib.name, Headers: []kgo.RecordHeader{{Key: keepaliveHeader, Value: []byte{'1'}}}}
		_ = ib.bus.prod.ProduceSync(ctx, rec).FirstErr() // the next one may succeed
		cancel()
		if !backoff.Sleep(ib.ctx, every) {
			return
		}
	}
}

// sweepInboxes deletes the topics named prefix and a random suffix, other
// than keep, that have had records but none (no keepalive) for
// reply_retention: those of inboxes whose process died. Failures are left
// for the next inbox to sweep.
func (b *Bus) sweepInboxes(ctx context.Context, prefix, keep string) {
	ctx, cancel := context.WithTimeout(ctx, deleteTimeout)
	defer cancel()
	topics, err := b.adm.ListTopics(ctx)
	if err != nil {
		return
	}
	var siblings []string
	for _, t := range topics.Names() {
		if suffix, ok := strings.CutPrefix(t, prefix); ok && t != keep && len(suffix) == 2*suffixBytes && isHex(suffix) {
			siblings = append(siblings, t)
		}
	}
	if len(siblings) == 0 {
		return
	}
	since := time.Now().Add(-time.Duration(b.o.ReplyRetention)).UnixMilli()
	// The newest record's time, per partition (ListOffsets -3, as a real
	// broker answers it): a lookup of the first record after a time is
	// answered from a running index that a broker may keep per segment.
	newest, err := b.adm.ListMaxTimestampOffsets(ctx, siblings...)
	if err != nil {
		return
	}
	ends, err := b.adm.ListEndOffsets(ctx, siblings...)
	if err != nil {
		return
	}
	starts, err := b.adm.ListStartOffsets(ctx, siblings...)
	if err != nil {
		return
	}
	for _, t := range siblings {
		// Dead: it has had records (a keepalive at least), and the newest
		// is older than the cutoff, or retention (reply_retention) has
		// removed them all. A topic that never had one may be an inbox
		// that is opening now; one the brokers cannot tell about is left
		// alone.
		written, recent := false, false
		for p, end := range ends[t] {
			if end.Err != nil {
				recent = true
				continue
			}
			if end.Offset == 0 {
				continue
			}
			written = true
			if st, ok := starts.Lookup(t, p); ok && st.Err == nil && st.Offset == end.Offset {
				continue // every record aged out
			}
			n, ok := newest.Lookup(t, p)
			if !ok || n.Err != nil || n.Timestamp < 0 || n.Timestamp >= since {
				recent = true // or cannot tell
			}
		}
		if written && !recent {
			_ = b.deleteTopic(t)
		}
	}
}

func isHex(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') }) < 0
}

// endOffsets returns where each partition of topic ends now.
func (b *Bus) endOffsets(ctx context.Context, topic string) (map[int32]kgo.Offset, error) {
	ctx, cancel := b.auth.guard(ctx)
	defer cancel()
	bo := backoff.New(backoff.Policy{Initial: time.Millisecond, Max: 100 * time.Millisecond})
	for {
		listed, err := b.adm.ListEndOffsets(ctx, topic)
		err = cause(ctx, err)
		if err == nil {
			start := make(map[int32]kgo.Offset)
			for p, lo := range listed[topic] {
				if lo.Err != nil {
					err = fmt.Errorf("partition %d: %w", p, lo.Err)
					break
				}
				start[p] = kgo.NewOffset().At(lo.Offset)
			}
			if err == nil && len(start) > 0 {
				return start, nil
			}
			if err == nil {
				err = errors.New("no partitions listed")
			}
		}
		if errors.Is(err, kgo.ErrClientClosed) {
			return nil, rpcbus.ErrClosed
		}
		if r := b.refusal(err, opDescribe, topic, ""); r != nil {
			return nil, fmt.Errorf("kafka: inbox %q: listing end offsets: %w", topic, r)
		}
		// A new topic's leaders may not be known everywhere yet.
		retriable := kerr.IsRetriable(err) || errors.Is(err, kerr.UnknownTopicOrPartition)
		if !retriable {
			return nil, fmt.Errorf("kafka: inbox %q: listing end offsets: %w", topic, err)
		}
		if !bo.Wait(ctx) {
			if r := b.refusal(cause(ctx, ctx.Err()), opDescribe, topic, ""); r != nil {
				return nil, fmt.Errorf("kafka: inbox %q: listing end offsets: %w", topic, r)
			}
			return nil, fmt.Errorf("kafka: inbox %q: listing end offsets: %w (%w: %w)", topic, ctx.Err(), rpcbus.ErrUnavailable, err)
		}
	}
}

// suffixBytes is the length of the random part of an inbox's topic name,
// in bytes (twice that in hex digits).
const suffixBytes = 6

// inbox is a direct consumer of every partition of one topic.
type inbox struct {
	bus    *Bus
	prefix string // the name given to Inbox, and a dot
	name   string
	cl     *kgo.Client
	h      func(*rpcbus.Message)
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // run and keepalive
	closed atomic.Bool
}

// Address returns the topic replies are published to.
func (ib *inbox) Address() string { return ib.name }

func (ib *inbox) run() {
	for {
		fs := ib.cl.PollFetches(ib.ctx)
		if ib.ctx.Err() != nil || fs.IsClientClosed() {
			return
		}
		fs.EachRecord(ib.deliver)
		if fs.NumRecords() == 0 && fs.Err() != nil && !backoff.Sleep(ib.ctx, errorPause) { // see subscription.poll
			return
		}
	}
}

func (ib *inbox) deliver(r *kgo.Record) {
	m := &rpcbus.Message{Topic: r.Topic, Key: r.Key, Value: r.Value}
	if len(r.Headers) > 0 {
		if r.Headers[0].Key == keepaliveHeader {
			return
		}
		m.Headers = make(map[string]string, len(r.Headers))
		for _, h := range r.Headers {
			m.Headers[h.Key] = string(h.Value)
		}
	}
	ib.h(m)
}

// Close stops the inbox, waits until its handler has returned and deletes
// the inbox's topic (within a few seconds; a topic the brokers could not
// delete is left for reply_retention and the next inbox of its name, as
// a crashed one's, and is no error). A second Close returns
// rpcbus.ErrClosed.
func (ib *inbox) Close() error {
	if ib.closed.Swap(true) {
		return rpcbus.ErrClosed
	}
	ib.bus.open.Remove(ib)
	ib.cancel()
	ib.wg.Wait()
	ib.cl.Close()
	_ = ib.bus.deleteTopic(ib.name)
	return nil
}

// deleteTopic deletes an inbox's topic, within deleteTimeout; a topic
// already gone is not an error.
func (b *Bus) deleteTopic(topic string) error {
	ctx, cancel := context.WithTimeout(context.Background(), deleteTimeout)
	defer cancel()
	resps, err := b.adm.DeleteTopics(ctx, topic)
	if err == nil {
		if r, ok := resps[topic]; ok && r.Err != nil && !errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
			err = r.Err
		}
	}
	b.known.Delete(topic)
	return err
}

// CloseNow is Close, for Bus.Close (closeset.Closer).
func (ib *inbox) CloseNow() { _ = ib.Close() }

// InboxOf reports whether address is one Inbox returns for name: name, a
// dot and the 12 hex digits of the inbox's own topic.
func (b *Bus) InboxOf(address, name string) bool {
	return rpcbus.InboxSuffixed(address, name, 2*suffixBytes, "0123456789abcdef")
}
