package nats

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nextpkg/vrpc/internal/backoff"
	"github.com/nextpkg/vrpc/internal/closeset"
	"github.com/nextpkg/vrpc/rpcbus"
)

func init() {
	rpcbus.Register("nats", func(cfg rpcbus.Config) (rpcbus.Bus, error) {
		b, err := New(cfg)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return b, nil
	})
}

const (
	// maxKnownTopics bounds the cache of topics whose stream this bus has
	// made sure of; past the bound the cache starts over.
	maxKnownTopics = 10000
	// closeTimeout bounds the clean-up of Close calls whose context has
	// ended: draining a subscription, deleting private consumers, waiting
	// for the connection to close.
	closeTimeout = 5 * time.Second
	// defaultPublishTimeout bounds a Publish whose context has no deadline.
	defaultPublishTimeout = 30 * time.Second
)

// Bus is a vRPC bus on NATS JetStream. It implements rpcbus.Bus,
// rpcbus.Inboxer, rpcbus.TopicCreator, rpcbus.Pinger, rpcbus.Addresser and
// rpcbus.Remover; its subscriptions rpcbus.StatusReporter. All its methods
// are safe for concurrent use.
type Bus struct {
	o        options
	servers  []string
	nc       *natsgo.Conn
	js       jetstream.JetStream
	closedCh chan struct{} // closed once the connection is closed
	denied   deniedWatch   // publishes the server's permissions deny
	// permitted holds the subjects a publish has been acknowledged on:
	// the server's permissions allow them, and their publishes skip the
	// denied watch and its allocations.
	permittedMu sync.RWMutex
	permitted   map[string]struct{}

	known  sync.Map // topic → struct{}: streams this bus made sure of
	knownN atomic.Int64

	// conn is the connection's current life: it ends at each
	// reconnection (see request). Nil until the first request.
	conn atomic.Pointer[connLife]

	open closeset.Set[closeset.Closer] // subscriptions and inboxes not yet closed
	wg   sync.WaitGroup                // the subscriptions' goroutines
}

var _ interface {
	rpcbus.Bus
	rpcbus.Inboxer
	rpcbus.TopicCreator
} = (*Bus)(nil)

// serverForms says what rpc_bus.brokers entries may be.
const serverForms = "want host:port, nats://[user:password@]host:port, nats://token@host:port, or tls://... for TLS " +
	"(ws:// and wss:// for WebSocket)"

// New connects a bus of type nats to the servers in cfg.Brokers (default
// nats://127.0.0.1:4222), configured by cfg.Settings as the package
// documentation describes. When no server answers yet, New does not fail:
// the bus connects in the background, retrying as it does after a
// connection loss, and its methods wait for it (failing, when their
// context ends first, with an error wrapping rpcbus.ErrUnavailable). A
// server that answers and refuses the connection (credentials, TLS) fails
// New at once. Once connected, the bus reconnects on its own for as long
// as it is open.
func New(cfg rpcbus.Config) (*Bus, error) {
	o, err := decodeOptions(cfg.Settings)
	if err != nil {
		return nil, err
	}
	servers := cfg.Brokers
	if len(servers) == 0 {
		servers = []string{defaultServer}
	}
	for i, s := range servers {
		if strings.TrimSpace(s) == "" {
			return nil, fmt.Errorf("rpc_bus.brokers[%d] is empty: give a NATS server address such as %s", i, defaultServer)
		}
		if scheme, _, ok := strings.Cut(s, "://"); ok {
			switch strings.ToLower(scheme) {
			case "nats", "tls", "ws", "wss":
			default:
				return nil, fmt.Errorf("rpc_bus.brokers[%d] %q: scheme %q is not supported (%s)", i, rpcbus.RedactAddress(s), scheme, serverForms)
			}
		}
	}
	b := &Bus{
		o:        o,
		servers:  slices.Clone(servers),
		closedCh: make(chan struct{}),
	}
	var closeOnce sync.Once
	connect := func(extra ...natsgo.Option) (*natsgo.Conn, error) {
		return natsgo.Connect(strings.Join(servers, ","), o.connectOptions(append(extra,
			natsgo.ReconnectHandler(func(*natsgo.Conn) { b.reconnected() }),
			// The first connection of a bus that started disconnected.
			natsgo.ConnectHandler(func(*natsgo.Conn) { b.reconnected() }),
			natsgo.ClosedHandler(func(*natsgo.Conn) { closeOnce.Do(func() { close(b.closedCh) }) }),
			// Without a handler nats.go prints asynchronous errors (a slow
			// inbox handler, say) to stderr; vRPC sees their effect as
			// deadlines, but for a permission the server denied, which
			// the next publish to that subject reports.
			natsgo.ErrorHandler(func(_ *natsgo.Conn, _ *natsgo.Subscription, err error) { b.denied.note(err, o.who()) }),
		)...)...)
	}
	nc, err := connect()
	if r := refusal(err, o); r != nil {
		return nil, fmt.Errorf("nats: connect to %s (rpc_bus.brokers): %w", strings.Join(rpcbus.RedactAddresses(servers), ", "), rpcbus.RedactError(r, servers))
	}
	if err != nil && unreachable(err) {
		// No server answers yet: the bus starts disconnected and connects
		// in the background, so that a program may start before its
		// servers. A server that answers and refuses (credentials, TLS)
		// fails here, at once.
		nc, err = connect(natsgo.RetryOnFailedConnect(true))
	}
	if err != nil {
		return nil, fmt.Errorf("nats: connect to %s (rpc_bus.brokers): %w; is a NATS server running there? "+
			"Start one with JetStream enabled: nats-server -js", strings.Join(rpcbus.RedactAddresses(servers), ", "), rpcbus.RedactError(err, servers))
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats: JetStream on %s: %w", strings.Join(rpcbus.RedactAddresses(servers), ", "), err)
	}
	b.nc, b.js = nc, js
	return b, nil
}

// Servers returns the addresses the bus was given.
func (b *Bus) Servers() []string { return slices.Clone(b.servers) }

// MaxPayload is the largest Value the bus carries with a key of up to 32
// bytes and no headers: the server's max_payload (1 MiB unless configured
// otherwise) less room for the key's header.
func (b *Bus) MaxPayload() int { return int(b.nc.MaxPayload()) - headerBudget }

// Publish sends msg to topic. To a request topic it publishes with
// JetStream and returns once the stream has stored the message; if no
// stream carries topic the error wraps rpcbus.ErrUnknownTopic. To an inbox
// address it publishes with core NATS and returns once the message is
// buffered for the server, without knowing whether any inbox listens (see
// "Inboxes" in the package documentation). A message over the server's
// max_payload gives an error wrapping rpcbus.ErrMessageTooLarge.
//
// While the connection is down a request waits for it until ctx is done;
// if ctx ends first the message may still be sent after a reconnect. A
// request sent on a connection that died before its acknowledgement came
// is sent again once the connection is back (the stream may then hold it
// twice, with one request id: vRPC servers recognise the repeat). A
// context without a deadline is given one of 30s.
func (b *Bus) Publish(ctx context.Context, topic string, msg *rpcbus.Message) error {
	if msg == nil {
		return fmt.Errorf("nats: publish to %q: nil message", topic)
	}
	if b.open.Closed() {
		return fmt.Errorf("nats: publish to %q: %w", topic, rpcbus.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("nats: publish to %q: %w", topic, err)
	}
	m := &natsgo.Msg{Subject: topic, Data: msg.Value, Header: encodeHeader(msg)}
	if isInbox(topic) {
		if err := b.nc.PublishMsg(m); err != nil {
			return b.publishError(topic, m, err)
		}
		return nil
	}
	if err := checkTopic(topic); err != nil {
		return fmt.Errorf("nats: publish: %w: %w", rpcbus.ErrUnknownTopic, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultPublishTimeout)
		defer cancel()
	}
	b.permittedMu.RLock()
	_, permitted := b.permitted[topic]
	b.permittedMu.RUnlock()
	if !permitted {
		// Until a publish to topic has been acknowledged, one the
		// server's permissions deny ends at once (the server tells
		// asynchronously).
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		defer cancel(nil)
		denied := b.denied.of(topic)
		defer context.AfterFunc(denied, func() { cancel(context.Cause(denied)) })()
	}
	bo := backoff.New(backoff.Policy{Initial: 10 * time.Millisecond, Max: 500 * time.Millisecond})
	for {
		resp, lost, err := b.request(ctx, m)
		if cause := context.Cause(ctx); errors.Is(cause, rpcbus.ErrForbidden) {
			return fmt.Errorf("nats: publish to %q: %w", topic, cause)
		}
		if err == nil {
			err = b.pubAck(topic, resp)
			if err == nil {
				b.permit(topic)
			}
			return err
		}
		if lost && ctx.Err() == nil {
			continue // sent on a connection that died: send it again
		}
		if !errors.Is(err, natsgo.ErrNoResponders) {
			return b.publishError(topic, m, err)
		}
		// No stream took the message. Ask JetStream whether one carries
		// topic: a stream being restored or electing a leader does not
		// answer either, and is worth waiting for.
		_, lerr := b.js.StreamNameBySubject(ctx, topic)
		switch {
		case errors.Is(lerr, jetstream.ErrStreamNotFound):
			b.known.Delete(topic)
			return fmt.Errorf("nats: publish to %q: %w (no JetStream stream carries it; CreateTopics or Subscribe creates one)",
				topic, rpcbus.ErrUnknownTopic)
		case errors.Is(lerr, natsgo.ErrNoResponders), errors.Is(lerr, jetstream.ErrJetStreamNotEnabled):
			return fmt.Errorf("nats: publish to %q: JetStream does not answer on %s (is the server started with -js?): %w",
				topic, b.nc.ConnectedUrlRedacted(), lerr)
		}
		if !bo.Wait(ctx) {
			return fmt.Errorf("nats: publish to %q: %w (its stream did not answer)", topic, ctx.Err())
		}
	}
}

// permit remembers that the server let the bus publish to topic.
func (b *Bus) permit(topic string) {
	b.permittedMu.Lock()
	defer b.permittedMu.Unlock()
	if b.permitted == nil || len(b.permitted) >= maxKnownTopics {
		b.permitted = make(map[string]struct{})
	}
	b.permitted[topic] = struct{}{}
}

// connLife is one life of the bus's connection, between reconnections.
type connLife struct {
	ctx context.Context
	end context.CancelFunc
}

func newConnLife() *connLife {
	ctx, end := context.WithCancel(context.Background())
	return &connLife{ctx, end}
}

// request publishes m and waits for the stream's acknowledgement until ctx
// ends. lost reports that it failed because the connection it was sent on
// died: nats.go fails a request only at its context's end, and one written
// to a connection that had died before nats.go noticed is never
// acknowledged, though the reconnected connection would take it again. A
// request made while the connection is down is buffered and sent when it
// is back, and is waited for as long as ctx allows.
func (b *Bus) request(ctx context.Context, m *natsgo.Msg) (resp *natsgo.Msg, lost bool, err error) {
	if !b.nc.IsConnected() {
		resp, err = b.nc.RequestMsgWithContext(ctx, m)
		return resp, false, err
	}
	life := b.conn.Load()
	if life == nil {
		b.conn.CompareAndSwap(nil, newConnLife())
		life = b.conn.Load()
	}
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(life.ctx, cancel)
	defer stop()
	resp, err = b.nc.RequestMsgWithContext(actx, m)
	return resp, err != nil && life.ctx.Err() != nil, err
}

// pubAck checks the stream's answer to a publish.
func (b *Bus) pubAck(topic string, resp *natsgo.Msg) error {
	// The common answer, {"stream":"name","seq":n}, needs no decoding.
	if bytes.HasPrefix(resp.Data, []byte(`{"stream":"`)) && !bytes.Contains(resp.Data, []byte(`"error"`)) {
		return nil
	}
	var ack struct {
		Stream string              `json:"stream"`
		Error  *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &ack); err != nil {
		return fmt.Errorf("nats: publish to %q: unreadable acknowledgement %q: %w", topic, resp.Data, err)
	}
	switch {
	case ack.Error != nil && ack.Error.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum:
		return fmt.Errorf("nats: publish to %q: %w: %w", topic, rpcbus.ErrMessageTooLarge, ack.Error)
	case ack.Error != nil:
		return fmt.Errorf("nats: publish to %q: the stream refused it: %w", topic, ack.Error)
	case ack.Stream == "":
		return fmt.Errorf("nats: publish to %q: acknowledgement %q names no stream", topic, resp.Data)
	}
	return nil
}

func (b *Bus) publishError(topic string, m *natsgo.Msg, err error) error {
	switch {
	case errors.Is(err, natsgo.ErrMaxPayload):
		return fmt.Errorf("nats: publish %d bytes to %q: %w (the server's max_payload is %d bytes, headers included)",
			len(m.Data), topic, rpcbus.ErrMessageTooLarge, b.nc.MaxPayload())
	case errors.Is(err, natsgo.ErrBadSubject):
		return fmt.Errorf("nats: publish to %q: %w (not a valid subject)", topic, rpcbus.ErrUnknownTopic)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		if !b.nc.IsConnected() {
			return fmt.Errorf("nats: publish to %q: %w: %w (not connected to NATS: %s)", topic, rpcbus.ErrUnavailable, err, b.nc.Status())
		}
		return fmt.Errorf("nats: publish to %q: %w", topic, err)
	}
	return fmt.Errorf("nats: publish to %q: %w", topic, b.connErr(err))
}

// unreachable reports whether a failed connect means that no server
// answered (refused, dial timed out, name not resolved) rather than that
// one answered and refused (credentials, TLS: those fail past the dial).
func unreachable(err error) bool {
	var (
		oe *net.OpError
		de *net.DNSError
	)
	return errors.Is(err, natsgo.ErrNoServers) || errors.As(err, &oe) && oe.Op == "dial" || errors.As(err, &de)
}

// notConnected wraps err with rpcbus.ErrUnavailable when the bus is not
// connected (yet, or any more) and not closed: whatever failed, it failed
// because no server could be reached. A connection that nats.go gave up
// on while the bus is open (a server that refused it, twice) is not
// unavailable: err then says why it closed.
func (b *Bus) notConnected(err error) error {
	if err == nil || errors.Is(err, rpcbus.ErrUnavailable) || b.open.Closed() || b.nc.IsConnected() {
		return err
	}
	if b.nc.IsClosed() {
		if last := b.nc.LastError(); last != nil {
			return fmt.Errorf("%w (the connection to %s was refused: %v)", err, strings.Join(rpcbus.RedactAddresses(b.servers), ", "), rpcbus.RedactError(last, b.servers))
		}
		return err
	}
	return fmt.Errorf("%w (%w: not connected to NATS at %s, %s: is a server running there? Start one with JetStream enabled: nats-server -js)",
		err, rpcbus.ErrUnavailable, strings.Join(rpcbus.RedactAddresses(b.servers), ", "), b.nc.Status())
}

// connErr turns the error of a closed connection into rpcbus.ErrClosed
// when the bus has been closed.
func (b *Bus) connErr(err error) error {
	if b.open.Closed() && errors.Is(err, natsgo.ErrConnectionClosed) {
		return fmt.Errorf("%w (%w)", rpcbus.ErrClosed, err)
	}
	return err
}

// jsErr is connErr, with what to do when the server has no JetStream.
func (b *Bus) jsErr(err error) error {
	err = b.connErr(err)
	if errors.Is(err, natsgo.ErrNoResponders) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
		return fmt.Errorf("%w (is JetStream enabled? start the server with -js)", err)
	}
	return err
}

// CreateTopics makes sure each topic has its stream, creating those that
// are missing with the max_age, max_bytes, replicas and storage settings.
// A stream that exists is left as it is. Until a group subscribes to a
// topic, its stream keeps what is published to it (see "Retention" in the
// package documentation).
func (b *Bus) CreateTopics(ctx context.Context, topics ...string) error {
	if b.open.Closed() {
		return fmt.Errorf("nats: create topics %q: %w", topics, rpcbus.ErrClosed)
	}
	for _, t := range topics {
		if err := checkTopic(t); err != nil {
			return fmt.Errorf("nats: create topics: %w", err)
		}
	}
	for _, t := range topics {
		if _, ok := b.known.Load(t); ok {
			continue
		}
		if err := b.ensureStream(ctx, t); err != nil {
			return b.notConnected(err)
		}
		if err := b.keep(ctx, t); err != nil {
			return b.notConnected(err)
		}
		b.remember(t)
	}
	return nil
}

// ensureStream creates the stream of topic unless it exists.
func (b *Bus) ensureStream(ctx context.Context, topic string) error {
	cfg := b.o.streamConfig(topic)
	_, err := b.js.CreateStream(ctx, cfg)
	// The server could not create the stream's store: seen when the last
	// other stream is deleted at the same moment and the server removes the
	// directory both live in. It passes; try again, five times, pausing
	// from 50ms to 800ms.
	bo := backoff.New(backoff.Policy{Initial: 50 * time.Millisecond, Max: 800 * time.Millisecond})
	for tries := 0; storeCreateFailed(err) && tries < 5 && bo.Wait(ctx); tries++ {
		_, err = b.js.CreateStream(ctx, cfg)
	}
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		// It exists with other settings: another process's, or earlier
		// ones. The first creator's settings stand.
		var s jetstream.Stream
		if s, err = b.js.Stream(ctx, cfg.Name); err == nil && !slices.Contains(s.CachedInfo().Config.Subjects, topic) {
			err = fmt.Errorf("stream %s exists but carries %q, not %q", cfg.Name, s.CachedInfo().Config.Subjects, topic)
		}
	}
	if err != nil {
		return fmt.Errorf("nats: create the stream of topic %q: %w", topic, b.jsErr(err))
	}
	b.remember(topic)
	return nil
}

// jsErrCodeStreamCreate is the JetStream API error of a stream the server
// failed to create for a reason of its own (not a bad or clashing config).
const jsErrCodeStreamCreate jetstream.ErrorCode = 10049

func storeCreateFailed(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jsErrCodeStreamCreate
}

// keep gives topic's stream the keeper consumer if it has no consumer at
// all: with interest retention, a stream without consumers would drop
// what is published to it. The first group to subscribe removes the
// keeper. Each side checks after its own change, so that whatever the
// interleaving of a CreateTopics and a Subscribe, the keeper does not
// outlive the group's arrival.
func (b *Bus) keep(ctx context.Context, topic string) error {
	stream := streamName(topic)
	s, err := b.js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("nats: create topic %q: reading stream %s: %w", topic, stream, b.jsErr(err))
	}
	if s.CachedInfo().State.Consumers > 0 {
		return nil
	}
	_, err = b.js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable:       keeperName,
		Description:   fmt.Sprintf("keeps what is published to vRPC topic %q until a group consumes it", topic),
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("nats: create topic %q: creating the keeper of stream %s: %w", topic, stream, b.jsErr(err))
	}
	info, err := s.Info(ctx)
	if err != nil {
		return fmt.Errorf("nats: create topic %q: reading stream %s: %w", topic, stream, b.jsErr(err))
	}
	if info.State.Consumers > 1 { // a group arrived meanwhile
		err := b.js.DeleteConsumer(ctx, stream, keeperName)
		if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return fmt.Errorf("nats: create topic %q: removing the keeper of stream %s: %w", topic, stream, b.jsErr(err))
		}
	}
	return nil
}

func (b *Bus) remember(topic string) {
	if _, loaded := b.known.LoadOrStore(topic, struct{}{}); loaded {
		return
	}
	if b.knownN.Add(1) > maxKnownTopics {
		b.known.Clear()
		b.knownN.Store(0)
	}
}

// reconnected tells every subscription that its pull requests were lost
// with the old connection.
func (b *Bus) reconnected() {
	if old := b.conn.Swap(newConnLife()); old != nil {
		old.end()
	}
	b.open.Range(func(c closeset.Closer) {
		if s, ok := c.(*subscription); ok {
			s.reset()
		}
	})
}

// add registers c to be closed by Bus.Close; false if the bus is closed.
// A subscription is also counted in b.wg, which Close waits for.
func (b *Bus) add(c closeset.Closer) bool {
	var then func()
	if _, ok := c.(*subscription); ok {
		then = func() { b.wg.Add(1) }
	}
	return b.open.Add(c, then)
}

// Close closes the subscriptions and inboxes still open, giving back the
// deliveries they hold without waiting for acknowledgements, waits until
// their handlers have returned, flushes what is buffered (replies,
// acknowledgements) and closes the connection. It must not be called from
// a handler. Calling it again does nothing.
func (b *Bus) Close() error {
	open, first := b.open.Close()
	if !first {
		return nil
	}

	// In parallel: each subscription giving deliveries back waits half a
	// second (see pullHeartbeat).
	var closing sync.WaitGroup
	for _, c := range open {
		closing.Go(c.CloseNow)
	}
	closing.Wait()
	b.wg.Wait()
	b.nc.Close() // flushes first
	b.denied.close()
	t := time.NewTimer(closeTimeout)
	defer t.Stop()
	select {
	case <-b.closedCh:
	case <-t.C:
	}
	return nil
}
