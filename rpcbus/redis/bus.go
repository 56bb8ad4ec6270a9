package redis

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/nextpkg/vrpc/internal/backoff"
	"github.com/nextpkg/vrpc/internal/closeset"
	"github.com/nextpkg/vrpc/rpcbus"
)

func init() {
	rpcbus.Register("redis", func(cfg rpcbus.Config) (rpcbus.Bus, error) {
		b, err := New(cfg)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return b, nil
	})
}

const (
	// closeTimeout bounds the acknowledgements and hand-back a closing
	// subscription sends once the context of Close has ended (always, for
	// Bus.Close).
	closeTimeout = 5 * time.Second
	// minBackoff and maxBackoff bound the pauses of read loops and retried
	// calls while the server cannot be reached.
	minBackoff = 10 * time.Millisecond
	maxBackoff = time.Second
	// unblockGrace is how long Close waits for CLIENT UNBLOCK to end a
	// blocking read before it closes the read's connection.
	unblockGrace = time.Second
	// createGroup is the consumer group CreateTopics creates and destroys at
	// once, to create an empty stream. The colon keeps it from ever being a
	// server's group: group names are rpcbus.ValidName.
	createGroup = "vrpc:create"
)

// Stream entry fields of a message.
const (
	fieldValue   = "v"
	fieldKey     = "k"
	headerPrefix = "h:"
)

// Bus is a vRPC bus on Redis Streams. It implements rpcbus.Bus,
// rpcbus.Inboxer, rpcbus.TopicCreator, rpcbus.Pinger, rpcbus.Addresser and
// rpcbus.Remover; its subscriptions rpcbus.StatusReporter. All its methods
// are safe for concurrent use.
type Bus struct {
	o    options
	addr string
	rdb  *goredis.Client // shared by every non-blocking command
	// batch sends the XADDs of Publish and the XACKs of subscriptions,
	// in pipelines.
	batch *batcher

	open closeset.Set[closeset.Closer] // subscriptions and inboxes not yet closed
}

var _ interface {
	rpcbus.Bus
	rpcbus.Inboxer
	rpcbus.TopicCreator
	rpcbus.Pinger
} = (*Bus)(nil)

// New returns a bus of type redis: a client of the server at cfg.Brokers[0]
// (default 127.0.0.1:6379) configured by cfg.Settings, described in the
// package documentation. It does not connect until first used.
func New(cfg rpcbus.Config) (*Bus, error) {
	o, err := decodeOptions(cfg.Settings)
	if err != nil {
		return nil, err
	}
	addr, err := brokerAddr(cfg.Brokers, &o)
	if err != nil {
		return nil, err
	}
	rdb := goredis.NewClient(o.clientOptions(addr, false, nil))
	return &Bus{
		o:     o,
		addr:  addr,
		rdb:   rdb,
		batch: newBatcher(rdb),
	}, nil
}

// Brokers returns the address of the Redis server.
func (b *Bus) Brokers() []string { return []string{b.addr} }

// Publish appends msg to the stream of topic and returns once Redis has
// done so. The stream must exist (CreateTopics, Subscribe or Inbox creates
// it): the append is refused otherwise, atomically, with an error wrapping
// rpcbus.ErrUnknownTopic. A message larger than max_message_bytes gives an
// error wrapping rpcbus.ErrMessageTooLarge; one that could not reach the
// server, an error wrapping rpcbus.ErrUnavailable. The stream is trimmed to about
// max_len entries as it grows.
//
// Publish waits only as long as ctx allows. If ctx ends first, a message
// still queued for a pipeline is not sent; one already sent may still be
// appended, and msg's byte slices must not be modified until then (at most
// the client's read and write timeouts, 3s each).
func (b *Bus) Publish(ctx context.Context, topic string, msg *rpcbus.Message) error {
	if b.open.Closed() {
		return rpcbus.ErrClosed
	}
	size := len(msg.Key) + len(msg.Value)
	for k, v := range msg.Headers {
		size += len(headerPrefix) + len(k) + len(v)
	}
	if size > b.o.MaxMessageBytes {
		return fmt.Errorf("redis: publish %d bytes to topic %q: %w (max_message_bytes is %d)",
			size, topic, rpcbus.ErrMessageTooLarge, b.o.MaxMessageBytes)
	}
	args := make([]any, 0, 11+2*len(msg.Headers))
	args = append(args, "xadd", b.o.key(topic), "nomkstream", "maxlen", "~", b.o.MaxLen, "*", fieldValue, msg.Value)
	if len(msg.Key) > 0 {
		args = append(args, fieldKey, msg.Key)
	}
	for k, v := range msg.Headers {
		args = append(args, headerPrefix+k, v)
	}
	err := b.batch.do(ctx, goredis.NewStringCmd(ctx, args...), size)
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, goredis.Nil):
		return fmt.Errorf("redis: publish to topic %q: %w", topic, rpcbus.ErrUnknownTopic)
	case b.open.Closed():
		return rpcbus.ErrClosed
	case errors.Is(err, ctx.Err()):
		return fmt.Errorf("redis: publish to topic %q: %w", topic, err)
	case ctx.Err() != nil:
		return fmt.Errorf("redis: publish to topic %q: %w (%v)", topic, ctx.Err(), err)
	}
	if r := b.o.refusal(err); r != nil {
		err = r
	}
	return wrap(err, "publish to topic %q", topic)
}

// decode turns the fields of a stream entry into a message of topic.
func decode(topic string, values map[string]any) rpcbus.Message {
	m := rpcbus.Message{Topic: topic}
	for f, v := range values {
		s, _ := v.(string)
		switch {
		case f == fieldValue:
			m.Value = []byte(s)
		case f == fieldKey:
			m.Key = []byte(s)
		case strings.HasPrefix(f, headerPrefix):
			if m.Headers == nil {
				m.Headers = make(map[string]string, len(values)-1)
			}
			m.Headers[f[len(headerPrefix):]] = s
		}
	}
	return m
}

// CreateTopics creates the streams of topics that do not exist, empty; one
// that exists is left as it is. While the server cannot be reached it
// retries until ctx ends.
func (b *Bus) CreateTopics(ctx context.Context, topics ...string) error {
	if b.open.Closed() {
		return rpcbus.ErrClosed
	}
	if len(topics) == 0 {
		return nil
	}
	keys := make([]string, len(topics))
	for i, t := range topics {
		keys[i] = b.o.key(t)
	}
	err := b.retry(ctx, func() error { return b.createStreams(ctx, keys, 0) })
	if err != nil {
		return fmt.Errorf("redis: creating topics %q: %w", topics, err)
	}
	return nil
}

// createStreams creates the streams of keys that do not exist, in one
// transaction: creating a consumer group with MKSTREAM and destroying it
// leaves an empty stream, and changes nothing on one that exists. With ttl
// the streams expire after it.
func (b *Bus) createStreams(ctx context.Context, keys []string, ttl time.Duration) error {
	cmds, err := b.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		for _, k := range keys {
			p.XGroupCreateMkStream(ctx, k, createGroup, "$")
			p.XGroupDestroy(ctx, k, createGroup)
			if ttl > 0 {
				p.PExpire(ctx, k, ttl)
			}
		}
		return nil
	})
	if err == nil {
		return nil
	}
	busy := false
	for _, c := range cmds {
		// A group left over by a creator that died between the two
		// commands cannot be: they run in one transaction. Still, a
		// BUSYGROUP changes nothing and the destroy that follows clears it.
		if e := c.Err(); e != nil && !goredis.HasErrorPrefix(e, "BUSYGROUP") {
			return e
		} else if e != nil {
			busy = true
		}
	}
	if busy {
		return nil
	}
	return err // the transaction did not run: AUTH failed, say
}

// retry calls f until it succeeds, the server refuses it for good, or ctx
// ends, backing off between failures. Failing for ctx, it wraps
// rpcbus.ErrUnavailable: the server could not be reached in time.
func (b *Bus) retry(ctx context.Context, f func() error) error {
	bo := newBackoff()
	var last error // the last failure that was not ctx's: what to report
	for {
		err := f()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			last = err
		}
		var refused goredis.Error
		switch {
		case err == nil:
			return nil
		case b.o.refusal(err) != nil:
			return b.o.refusal(err)
		case errors.As(err, &refused) && !transient(err):
			return err
		case b.open.Closed():
			return rpcbus.ErrClosed
		case ctx.Err() != nil:
			return fmt.Errorf("%w: %w (%v)", ctx.Err(), rpcbus.ErrUnavailable, cmp.Or(last, err))
		}
		if !bo.Wait(ctx) {
			return fmt.Errorf("%w: %w (%v)", ctx.Err(), rpcbus.ErrUnavailable, cmp.Or(last, err))
		}
	}
}

// newBackoff is the backoff of read loops and retried calls while the
// server cannot be reached.
func newBackoff() *backoff.Backoff {
	return backoff.New(backoff.Policy{Initial: minBackoff, Max: maxBackoff})
}

// unblock ends the blocking read of a read loop that was told to stop, and
// waits until the loop is done. It sends CLIENT UNBLOCK for the loop's
// connection (CLIENT ID in id) again and again, as the read may not have
// started when the first one arrives. Should that not do within
// unblockGrace (the server is unreachable, or an ACL forbids CLIENT
// UNBLOCK), it closes the loop's client rd, which breaks the read.
func (b *Bus) unblock(id *atomic.Int64, rd *goredis.Client, done <-chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), unblockGrace)
	defer cancel()
	bo := backoff.New(backoff.Policy{Initial: 5 * time.Millisecond, Max: 100 * time.Millisecond})
	for ctx.Err() == nil {
		if v := id.Load(); v != 0 {
			_ = b.rdb.ClientUnblock(ctx, v).Err()
		}
		// Not bo.Wait: the pause ends early when the loop is done, which
		// is an event, not a context.
		pause := time.NewTimer(bo.Next())
		select {
		case <-done:
			pause.Stop()
			return
		case <-ctx.Done():
		case <-pause.C:
		}
		pause.Stop()
	}
	_ = rd.Close()
	<-done
}

// Ping returns nil when the server answers.
func (b *Bus) Ping(ctx context.Context) error {
	if b.open.Closed() {
		return rpcbus.ErrClosed
	}
	if err := b.rdb.Ping(ctx).Err(); err != nil {
		if r := b.o.refusal(err); r != nil {
			err = r
		}
		return wrap(err, "ping %s", b.addr)
	}
	return nil
}

// Close closes the subscriptions and inboxes still open, without waiting
// for unacknowledged deliveries (they are handed back to their groups),
// then the bus's connections. Calling it again does nothing.
func (b *Bus) Close() error {
	open, first := b.open.Close()
	if !first {
		return nil
	}

	// Closed only once they are: they use the shared client to
	// acknowledge, hand back and unblock.
	var wg sync.WaitGroup
	for _, c := range open {
		wg.Go(c.CloseNow)
	}
	wg.Wait()
	b.batch.close()
	return b.rdb.Close()
}

// randomSuffix returns n random lowercase letters and digits.
func randomSuffix(n int) string {
	return strings.ToLower(rand.Text()[:n])
}
