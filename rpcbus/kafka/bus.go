package kafka

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/nextpkg/vrpc/internal/backoff"
	"github.com/nextpkg/vrpc/internal/closeset"
	"github.com/nextpkg/vrpc/rpcbus"
)

func init() {
	rpcbus.Register("kafka", func(cfg rpcbus.Config) (rpcbus.Bus, error) {
		b, err := New(cfg)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return b, nil
	})
}

const (
	// maxKnownTopics bounds the cache of topics seen to exist. A server
	// replies to one inbox per client instance, so over a long life it may
	// see any number of them; past the bound the cache starts over.
	maxKnownTopics = 10000
	// flushTimeout bounds how long Close waits for accepted records.
	flushTimeout = 5 * time.Second
	// closeTimeout bounds the commit and group leave of subscriptions
	// that Bus.Close closes, and of a Subscription.Close whose context
	// has already ended.
	closeTimeout = 5 * time.Second
	// deleteTimeout bounds the deletion of an inbox's topic at Close.
	deleteTimeout = 5 * time.Second
)

// Bus is a vRPC bus on Kafka. It implements rpcbus.Bus, rpcbus.Inboxer,
// rpcbus.TopicCreator, rpcbus.Pinger and rpcbus.Addresser; its
// subscriptions rpcbus.StatusReporter. All its methods are safe for
// concurrent use.
type Bus struct {
	o       options
	brokers []string
	prod    *kgo.Client // the one producer, shared by every Publish
	adm     *kadm.Client
	auth    *authWatch // on every client of the bus

	known  sync.Map // topic name → struct{}: topics seen to exist
	knownN atomic.Int64

	open closeset.Set[closeset.Closer] // subscriptions and inboxes not yet closed
}

var _ interface {
	rpcbus.Bus
	rpcbus.Inboxer
	rpcbus.TopicCreator
} = (*Bus)(nil)

// New returns a bus of type kafka: a client of the brokers in cfg.Brokers
// (default 127.0.0.1:9092) configured by cfg.Settings, described in the
// package documentation. It does not connect until first used.
func New(cfg rpcbus.Config) (*Bus, error) {
	o, err := decodeOptions(cfg.Settings, nil)
	if err != nil {
		return nil, err
	}
	brokers := cfg.Brokers
	if len(brokers) == 0 {
		brokers = []string{defaultBroker}
	}
	for i, b := range brokers {
		// Kafka has no URL convention: a scheme or user information would
		// reach the dialler as part of the host name.
		if strings.TrimSpace(b) == "" || strings.Contains(b, "://") || strings.ContainsAny(b, "@/") {
			return nil, fmt.Errorf("rpc_bus.brokers[%d] %q: want host:port (the port defaults to 9092); "+
				"SASL credentials and TLS go in rpc_bus.settings (sasl_*, tls)", i, rpcbus.RedactAddress(b))
		}
	}
	auth := newAuthWatch()
	prod, err := kgo.NewClient(append(o.clientOpts(brokers, auth), o.producerOpts()...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka: creating the producer for %v: %w", rpcbus.RedactAddresses(brokers), rpcbus.RedactError(err, brokers))
	}
	return &Bus{
		o:       o,
		brokers: slices.Clone(brokers),
		prod:    prod,
		adm:     kadm.NewClient(prod),
		auth:    auth,
	}, nil
}

// Brokers returns the addresses the bus connects to.
func (b *Bus) Brokers() []string { return slices.Clone(b.brokers) }

// call is one Publish waiting for its record. Calls are pooled so that a
// Publish allocates nothing in the steady state: the promise is bound once.
type call struct {
	rec     kgo.Record
	done    chan error
	promise func(*kgo.Record, error)
}

var callPool = sync.Pool{New: func() any {
	c := &call{done: make(chan error, 1)}
	c.promise = func(_ *kgo.Record, err error) { c.done <- err }
	return c
}}

// Publish sends msg to topic and waits until the brokers have acknowledged
// it per the acks setting, or ctx is done. A topic not seen before is
// looked up first: if it does not exist the error wraps
// rpcbus.ErrUnknownTopic at once. A record larger than max_message_bytes
// gives an error wrapping rpcbus.ErrMessageTooLarge. Wrong SASL
// credentials, or ACLs that do not let the user describe and write topic,
// give an error wrapping rpcbus.ErrRefused (see refusal) as soon as the
// brokers say so.
//
// If ctx ends first, the record may still be sent, and msg's byte slices
// must not be modified until then.
func (b *Bus) Publish(ctx context.Context, topic string, msg *rpcbus.Message) error {
	if b.open.Closed() {
		return rpcbus.ErrClosed
	}
	if _, ok := b.known.Load(topic); !ok {
		if err := b.lookUp(ctx, topic); err != nil {
			return err
		}
	}
	c := callPool.Get().(*call)
	r := &c.rec
	r.Topic, r.Key, r.Value = topic, msg.Key, msg.Value
	for k, v := range msg.Headers {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
	}
	// The record does not carry ctx: franz-go fails every record buffered
	// for a partition when the first one's context ends, so one caller
	// giving up would fail the calls and replies batched behind it. A
	// caller that gives up stops waiting below; its record still goes out
	// (or fails after delivery_timeout), and a server drops a request once
	// its deadline has passed. TryProduce: with franz-go's buffer full (the
	// brokers away), fail now rather than block past ctx.
	b.prod.TryProduce(context.Background(), r, c.promise)
	select {
	case err := <-c.done:
		clear(r.Headers)
		*r = kgo.Record{Headers: r.Headers[:0]}
		callPool.Put(c)
		if err != nil {
			return b.publishError(topic, len(msg.Key)+len(msg.Value), err)
		}
		return nil
	case <-b.auth.refused():
		// The promise still owns c, as below; franz-go goes on trying.
		return fmt.Errorf("kafka: publish to topic %q: %w", topic, b.refusal(errAuthClosed, opWrite, topic, ""))
	case <-ctx.Done():
		// The promise still owns c: leave it to the garbage collector.
		return fmt.Errorf("kafka: publish to topic %q: %w", topic, ctx.Err())
	}
}

func (b *Bus) publishError(topic string, size int, err error) error {
	if r := b.refusal(err, opWrite, topic, ""); r != nil {
		return fmt.Errorf("kafka: publish to topic %q: %w", topic, r)
	}
	switch {
	case errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.RecordListTooLarge):
		return fmt.Errorf("kafka: publish %d bytes to topic %q: %w (max_message_bytes is %d): %w",
			size, topic, rpcbus.ErrMessageTooLarge, b.o.MaxMessageBytes, err)
	case errors.Is(err, kerr.UnknownTopicOrPartition):
		b.known.Delete(topic) // deleted since we looked
		return fmt.Errorf("kafka: publish to topic %q: %w", topic, rpcbus.ErrUnknownTopic)
	case errors.Is(err, kgo.ErrClientClosed):
		return rpcbus.ErrClosed
	case errors.Is(err, kgo.ErrMaxBuffered), errors.Is(err, kgo.ErrRecordTimeout):
		return fmt.Errorf("kafka: publish to topic %q: %w: %w", topic, rpcbus.ErrUnavailable, err)
	}
	return fmt.Errorf("kafka: publish to topic %q: %w", topic, err)
}

// lookUp asks the brokers whether topic exists and remembers it if so. It
// asks directly rather than through kadm, whose metadata cache would keep
// answering "unknown" for a few seconds after the topic is created.
func (b *Bus) lookUp(ctx context.Context, topic string) error {
	ctx, cancel := b.auth.guard(ctx)
	defer cancel()
	missing, err := b.missingTopics(ctx, []string{topic})
	err = cause(ctx, err)
	switch {
	case errors.Is(err, kgo.ErrClientClosed):
		return rpcbus.ErrClosed
	case b.refusal(err, opDescribe, topic, "") != nil:
		return fmt.Errorf("kafka: publish to topic %q: %w", topic, b.refusal(err, opDescribe, topic, ""))
	case err != nil:
		return unreachable(fmt.Errorf("kafka: publish to topic %q: looking it up: %w", topic, rpcbus.RedactError(err, b.brokers)))
	case len(missing) > 0:
		return fmt.Errorf("kafka: publish to topic %q: %w", topic, rpcbus.ErrUnknownTopic)
	}
	return nil
}

// missingTopics returns which of topics the brokers do not know, and
// remembers the others.
func (b *Bus) missingTopics(ctx context.Context, topics []string) ([]string, error) {
	req := kmsg.NewPtrMetadataRequest()
	req.AllowAutoTopicCreation = false
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, b.prod)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, t := range topics {
		i := slices.IndexFunc(resp.Topics, func(rt kmsg.MetadataResponseTopic) bool {
			return rt.Topic != nil && *rt.Topic == t
		})
		if i < 0 {
			missing = append(missing, t)
			continue
		}
		rt := resp.Topics[i]
		switch err := kerr.ErrorForCode(rt.ErrorCode); {
		case err == nil && len(rt.Partitions) > 0:
			b.remember(t)
		case err == nil, errors.Is(err, kerr.UnknownTopicOrPartition), errors.Is(err, kerr.LeaderNotAvailable):
			missing = append(missing, t)
		default:
			return nil, fmt.Errorf("topic %q: %w", t, err)
		}
	}
	return missing, nil
}

func (b *Bus) remember(topic string) {
	if b.knownN.Add(1) > maxKnownTopics {
		b.known.Clear()
		b.knownN.Store(1)
	}
	b.known.Store(topic, struct{}{})
}

// CreateTopics creates those of topics that do not exist, with the
// partitions, replication_factor and max_message_bytes settings, and
// returns once the brokers list them all (or ctx is done). A topic that
// exists already is left as it is, and needs no right to create topics:
// only to describe it. When the brokers refuse (wrong credentials, missing
// ACLs, a replication factor larger than the live brokers) the error wraps
// rpcbus.ErrRefused and says what to change.
func (b *Bus) CreateTopics(ctx context.Context, topics ...string) error {
	if b.open.Closed() {
		return rpcbus.ErrClosed
	}
	if len(topics) == 0 {
		return nil
	}
	gctx, cancel := b.auth.guard(ctx)
	missing, err := b.missingTopics(gctx, topics)
	err = cause(gctx, err)
	cancel()
	if r := b.refusal(err, opDescribe, strings.Join(topics, ","), ""); r != nil {
		return fmt.Errorf("kafka: creating topics %q: %w", topics, r)
	}
	if err == nil && len(missing) == 0 {
		return nil
	}
	return b.createTopics(ctx, nil, topics...)
}

// createTopics is CreateTopics, with configs for the new topics on top of
// max.message.bytes.
func (b *Bus) createTopics(ctx context.Context, configs map[string]*string, topics ...string) error {
	ctx, cancel := b.auth.guard(ctx)
	defer cancel()
	mmb := strconv.Itoa(b.o.MaxMessageBytes)
	cfg := map[string]*string{"max.message.bytes": &mmb}
	maps.Copy(cfg, configs)
	resps, err := b.adm.CreateTopics(ctx, int32(b.o.Partitions), int16(b.o.ReplicationFactor), cfg, topics...)
	if err = cause(ctx, err); err != nil {
		if r := b.refusal(err, opCreate, strings.Join(topics, ","), ""); r != nil {
			return fmt.Errorf("kafka: creating topics %q: %w", topics, r)
		}
		return unreachable(fmt.Errorf("kafka: creating topics %q on %v: %w", topics, rpcbus.RedactAddresses(b.brokers), rpcbus.RedactError(err, b.brokers)))
	}
	var errs []error
	for _, t := range topics {
		r, ok := resps[t]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("kafka: creating topic %q: no answer from the broker", t))
		case r.Err == nil, errors.Is(r.Err, kerr.TopicAlreadyExists):
		default:
			err := r.Err
			refused := b.refusal(err, opCreate, t, "")
			if refused != nil {
				err = refused
			}
			if r.ErrMessage != "" {
				err = fmt.Errorf("%w (%s)", err, r.ErrMessage)
			}
			err = fmt.Errorf("kafka: creating topic %q: %w", t, err)
			if refused == nil {
				err = unreachable(err)
			}
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return b.waitListed(ctx, topics)
}

// waitListed waits until the brokers' metadata lists every topic: a new
// topic takes a moment to reach every broker.
func (b *Bus) waitListed(ctx context.Context, topics []string) error {
	bo := backoff.New(backoff.Policy{Initial: time.Millisecond, Max: 100 * time.Millisecond})
	for {
		missing, err := b.missingTopics(ctx, topics)
		if err == nil && len(missing) == 0 {
			return nil
		}
		if r := b.refusal(cause(ctx, err), opDescribe, strings.Join(topics, ","), ""); r != nil {
			return fmt.Errorf("kafka: creating topics %q: %w", topics, r)
		}
		if err == nil {
			err = fmt.Errorf("created but not yet listed by the brokers: %q", missing)
		}
		if !bo.Wait(ctx) {
			if r := b.refusal(cause(ctx, ctx.Err()), opDescribe, strings.Join(topics, ","), ""); r != nil {
				return fmt.Errorf("kafka: creating topics %q: %w", topics, r)
			}
			// The brokers answered but do not list the topics yet: not
			// ready, as a cluster electing its controller is.
			return fmt.Errorf("kafka: creating topics %q: %w (%w: %w)", topics, ctx.Err(), rpcbus.ErrUnavailable, err)
		}
	}
}

// Close closes the subscriptions and inboxes still open (without waiting
// for unacknowledged deliveries), waits a few seconds for records already
// accepted to be acknowledged, then closes the producer. Calling it again
// does nothing.
func (b *Bus) Close() error {
	open, first := b.open.Close()
	if !first {
		return nil
	}

	for _, c := range open {
		c.CloseNow()
	}
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	_ = b.prod.Flush(ctx) // what is not flushed fails with ErrClosed
	cancel()
	b.prod.Close()
	return nil
}
