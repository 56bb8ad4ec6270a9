package vclient

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/nextpkg/vrpc/codec"
	"github.com/nextpkg/vrpc/internal/backoff"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vconfig"
	"github.com/nextpkg/vrpc/vrpcpb"
)

// Client publishes calls to the bus and routes each reply back to the call
// that is waiting for it. It is safe for concurrent use.
type Client struct {
	log     *slog.Logger
	cfg     Config
	bus     rpcbus.Bus
	ownsBus bool
	inbox   rpcbus.Inbox
	// idPrefix makes request ids unique across client instances, including
	// instances that share a client id and so read the same reply address.
	idPrefix string
	seq      atomic.Uint64
	// unsent counts the pending calls the bus has not taken yet: those
	// publishing, which is most of them while the bus is down.
	unsent atomic.Int64

	mu           sync.Mutex
	pending      map[uint64]pendingCall
	pendingBytes int // sum of the pending calls' bytes, bounded by max_pending_bytes
	closed       bool
	calls        sync.WaitGroup // calls between admission and return

	schemas schemaCache // under mu
	// topics holds the request topics published to (string → struct{}):
	// their targets exist, so a topic unknown later is a broker's loss.
	topics sync.Map

	loopbackOnce sync.Once
	loopback     *loopback
	loopbackErr  error

	obs    *observer // metrics and tracing (hooks.go)
	signer *signer   // nil when security is off (security.go)
}

// pendingCall is a call waiting for its reply.
type pendingCall struct {
	ch    chan *vrpcpb.Response
	bytes int // what the call counts against max_pending_bytes
	// since is when the call was admitted; published whether the bus has
	// taken its request. For Waiting.
	since     time.Time
	published bool
}

// Response is the outcome of a call. When the call fails with the target's
// status, the returned Response still carries its header and trailer.
type Response struct {
	// Payload is the reply message as the target encoded it.
	Payload []byte
	// Header and Trailer are the target's response metadata.
	Header  metadata.MD
	Trailer metadata.MD
}

// Option configures New.
type Option interface{ apply(*options) }

type options struct {
	bus rpcbus.Bus
	tp  trace.TracerProvider
	log *slog.Logger
	// wait, if set, replaces timeout.connect: New waits for the bus
	// until it is done (WithWaitForBus).
	wait context.Context
}

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

// WithBus makes the client use bus instead of building one from
// cfg.RpcBus. The client does not close it.
func WithBus(bus rpcbus.Bus) Option {
	return optionFunc(func(o *options) { o.bus = bus })
}

// WithLogger makes the client log through log instead of slog.Default():
// replies it drops, configuration warnings, and every call with debug: true.
func WithLogger(log *slog.Logger) Option {
	return optionFunc(func(o *options) { o.log = log })
}

// WithWaitForBus makes New wait for a bus that cannot be reached for as
// long as ctx lasts, instead of timeout.connect: for daemons (the
// gateway, a service) that may start before their bus, and stop waiting
// when they are told to stop. While it waits, New logs what it waits for
// (at most every 30s).
func WithWaitForBus(ctx context.Context) Option {
	return optionFunc(func(o *options) { o.wait = ctx })
}

// New opens the bus and the client's reply inbox; once it returns, replies
// to every request the client publishes are certain to reach it.
//
// A bus that cannot be reached yet (an error wrapping
// rpcbus.ErrUnavailable) is tried again, with backoff, for up to
// timeout.connect (or as long as WithWaitForBus's context lasts); then New
// fails with an error that names the bus type, its redacted addresses and
// the timeout, and wraps the last attempt's error (so rpcbus.Unreachable
// reports true for it). Any other error, a refused credential or a bad
// setting, fails New at once.
//
// When the bus refuses the client (wrong credentials, missing ACLs, a
// replication factor larger than the live brokers) the error wraps
// rpcbus.ErrRefused and names what to change.
func New(cfg Config, opts ...Option) (*Client, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := options{log: slog.Default()}
	for _, opt := range opts {
		opt.apply(&o)
	}
	if o.log == nil {
		o.log = slog.Default()
	}
	if o.bus == nil { // a bus given is its owner's to warn about
		vconfig.WarnOnce(o.log, cfg.SecurityWarnings()...)
	}
	c := &Client{
		log:      o.log,
		cfg:      cfg,
		bus:      o.bus,
		idPrefix: cfg.ClientID + "-" + randomHex(6) + "-",
		pending:  make(map[uint64]pendingCall),
	}
	c.obs = newObserver(c, o.tp)
	var err error
	if c.signer, err = newSigner(cfg); err != nil {
		return nil, err
	}
	if c.signer != nil {
		c.signer.log = c.log
	}
	if err := c.open(o); err != nil {
		return nil, err
	}
	return c, nil
}

// reach paces open's attempts to reach a bus that is not up yet; each
// attempt is cut short at its timeout (2s, doubling up to 10s) so that a
// client waiting without a deadline (WithWaitForBus) soon says, and then
// every 30s at most, what it waits for.
var reach = backoff.Reach{
	Policy:   backoff.Policy{Initial: 50 * time.Millisecond, Max: 2 * time.Second, Jitter: true},
	First:    2 * time.Second,
	Max:      10 * time.Second,
	LogEvery: 30 * time.Second,
}

// open builds the bus, unless one was given, and opens the reply inbox,
// trying again while the bus cannot be reached.
func (c *Client) open(o options) error {
	cfg := c.cfg
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout.Connect)
	if o.wait != nil {
		cancel()
		ctx, cancel = context.WithCancel(o.wait)
	}
	defer cancel()
	r := reach
	if o.wait == nil {
		r.First = cfg.Timeout.Connect // one-shot: no need to cut attempts short
	}
	w := r.Start()
	since := w.Since
	var cause error
	for attempt := 1; ; attempt++ {
		err := c.openOnce(ctx, w.Timeout())
		if err == nil {
			if attempt > 1 {
				logf(c.log, slog.LevelInfo, "vrpc client %s: reached the %s after %v (attempts: %d)",
					cfg.ClientID, c.busDesc(), time.Since(since).Round(time.Millisecond), attempt)
			}
			return nil
		}
		if !rpcbus.Unreachable(err) {
			return err
		}
		// Report the last failure that says more than that time ran out
		// (a refused connection, say), if any.
		if cause == nil || !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			cause = err
		}
		if o.wait != nil {
			if now := time.Now(); w.Log(now) {
				logf(c.log, slog.LevelWarn, "vrpc client %s: waiting for the %s (for %v, attempts: %d): %v",
					cfg.ClientID, c.busDesc(), now.Sub(since).Round(time.Second), attempt, err)
			}
		}
		if !w.Wait(ctx) {
			c.closeBus()
			if o.wait != nil {
				return fmt.Errorf("vclient: stopped waiting for the %s after %v (attempts: %d): %w (last error: %w)",
					c.busDesc(), time.Since(since).Round(time.Millisecond), attempt, context.Cause(ctx), cause)
			}
			return fmt.Errorf("vclient: no server of the %s answered within timeout.connect %v (attempts: %d): is it running, and are rpc_bus.type and rpc_bus.brokers right? last error: %w",
				c.busDesc(), cfg.Timeout.Connect, attempt, cause)
		}
	}
}

// openOnce is one attempt of open.
func (c *Client) openOnce(wait context.Context, timeout time.Duration) error {
	cfg := c.cfg
	if c.bus == nil {
		bus, err := rpcbus.New(cfg.RpcBus)
		if err != nil {
			return err
		}
		c.bus, c.ownsBus = bus, true
	}
	inboxer, ok := c.bus.(rpcbus.Inboxer)
	if !ok {
		c.closeBus()
		return fmt.Errorf("rpc_bus.type %q cannot host a reply address (it does not implement rpcbus.Inboxer)", cfg.RpcBus.Type)
	}
	ctx, cancel := context.WithTimeout(wait, timeout)
	defer cancel()
	inbox, err := inboxer.Inbox(ctx, cfg.Topics.Response+"."+cfg.ClientID, c.onReply)
	if err != nil && ctx.Err() != nil && !rpcbus.Unreachable(err) {
		// No answer in time is the bus's servers not answering, whatever
		// the backend made of it.
		err = fmt.Errorf("%w (%w: no answer within %v)", err, rpcbus.ErrUnavailable, timeout)
	}
	if err != nil {
		if !rpcbus.Unreachable(err) {
			c.closeBus()
		}
		return fmt.Errorf("vclient: open reply address %s.%s on the %s: %w", cfg.Topics.Response, cfg.ClientID, c.busDesc(), err)
	}
	c.inbox = inbox
	return nil
}

// busDesc names the bus for messages: its type and redacted addresses.
func (c *Client) busDesc() string { return rpcbus.Describe(c.cfg.RpcBus, c.bus) }

// Config returns the client's configuration with defaults applied.
func (c *Client) Config() Config { return c.cfg }

// ReplyAddress is where servers publish this client's replies.
func (c *Client) ReplyAddress() string { return c.inbox.Address() }

// Call sends payload to method of target and waits for the reply. method is
// a full gRPC method ("/demo.Demo/Ping" or "demo.Demo/Ping") or a short name
// ("Ping") that the server resolves through the target's reflection
// service. md becomes the call's incoming metadata at the target.
//
// payload is the request message's protobuf encoding, or its JSON (protojson)
// form: a payload that is a JSON object is taken as JSON unless WithProtobuf
// says otherwise. The server transcodes JSON with the descriptors from the
// target's server reflection (or a configured descriptor set), and the reply's
// Payload is then JSON too (see WithJSONOptions).
//
// The error is a gRPC status error: the target's own status, or one of
// DEADLINE_EXCEEDED, CANCELED, UNAVAILABLE (bus unreachable),
// UNIMPLEMENTED (no server serves target, or no such method),
// INVALID_ARGUMENT (bad JSON), RESOURCE_EXHAUSTED (payload or reply
// over max_message_bytes, metadata over max_metadata_bytes, or
// max_pending / max_pending_bytes reached), and UNAUTHENTICATED,
// PERMISSION_DENIED or FAILED_PRECONDITION when the bus refuses the
// request (its credentials, ACLs or settings: see rpcbus.ErrRefused; the
// message names the fix) from vRPC itself.
func (c *Client) Call(ctx context.Context, target, method string, payload []byte, md map[string]string, opts ...CallOption) (*Response, error) {
	var o callOptions
	for _, opt := range opts {
		opt.applyCall(&o)
	}
	enc := o.encoding
	if enc == encodingAuto {
		enc = encodingProto
		if looksLikeJSON(payload) {
			enc = encodingJSON
		}
	}
	var outgoing metadata.MD
	if len(md) > 0 {
		outgoing = metadata.New(md)
	}
	req := &vrpcpb.Request{}
	if enc == encodingJSON {
		req.Encoding = vrpcpb.Encoding_ENCODING_JSON
		req.JsonOptions = o.json
	}
	return result(c.invoke(ctx, target, method, payload, outgoing, req))
}

// Invoke is Call with gRPC metadata and a protobuf payload: the common path
// of the interceptor, Conn and the loopback endpoint.
func (c *Client) Invoke(ctx context.Context, target, method string, payload []byte, md metadata.MD) (*Response, error) {
	return result(c.invoke(ctx, target, method, payload, md, &vrpcpb.Request{}))
}

// carry completes req (which may carry an encoding already) and carries it.
// It returns the reply as it came, whatever its status, or the error that
// kept the call from getting one. result makes them a Response and an
// error.
func (c *Client) carry(ctx context.Context, target, method string, payload []byte, md metadata.MD, req *vrpcpb.Request) (*vrpcpb.Response, error) {
	if !rpcbus.ValidName(target) {
		return nil, status.Errorf(codes.InvalidArgument, "vrpc: target %q is not a valid target name", target)
	}
	if method == "" {
		return nil, status.Error(codes.InvalidArgument, "vrpc: empty method name")
	}
	if strings.Contains(method, "/") && method[0] != '/' {
		method = "/" + method
	}
	if len(payload) > c.cfg.MaxMessageBytes {
		return nil, status.Errorf(codes.ResourceExhausted,
			"vrpc: trying to send message larger than max (%d vs. %d); raise max_message_bytes in the client and max_message_size in the server", len(payload), c.cfg.MaxMessageBytes)
	}
	if err := ctx.Err(); err != nil {
		return nil, status.FromContextError(err).Err()
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		var cancel context.CancelFunc
		deadline = time.Now().Add(c.cfg.Timeout.Request)
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}

	wireMD := codec.MetadataToWire(md)
	mdBytes := metadataBytes(wireMD)
	if mdBytes > c.cfg.MaxMetadataBytes {
		return nil, status.Errorf(codes.ResourceExhausted,
			"vrpc: request metadata of %d bytes is larger than max_metadata_bytes %d; send less metadata or raise max_metadata_bytes in the client", mdBytes, c.cfg.MaxMetadataBytes)
	}

	seq, ch, err := c.admit(len(payload) + mdBytes + len(method) + len(target))
	if err != nil {
		return nil, err
	}
	defer c.calls.Done()

	var id [64]byte // one allocation for the id, not two
	req.Id = string(strconv.AppendUint(append(id[:0], c.idPrefix...), seq, 36))
	req.ClientId = c.cfg.ClientID
	req.ReplyTo = c.inbox.Address()
	req.Target = target
	req.Method = method
	req.Payload = payload
	req.Metadata = wireMD
	req.DeadlineUnixNano = deadline.UnixNano()
	req.SentUnixNano = time.Now().UnixNano()
	if err := c.publish(ctx, req); err != nil {
		c.forget(seq)
		return nil, err
	}
	c.published(seq)
	// The bus has the request and it is never published again: let the
	// payload go while the call waits (for the gateway, the last
	// reference to the caller's request).
	req.Payload = nil
	select {
	case resp := <-ch:
		if c.cfg.Debug {
			c.infof("vrpc: call %s %s %s: %s", req.Id, target, method, codes.Code(resp.GetStatus().GetCode()))
		}
		return resp, nil
	case <-ctx.Done():
		c.forget(seq)
		err := status.FromContextError(ctx.Err()).Err()
		if c.cfg.Debug {
			c.infof("vrpc: call %s %s %s: %v", req.Id, target, method, err)
		}
		return nil, err
	}
}

// admit registers a pending call of size bytes, bounded by max_pending
// and max_pending_bytes.
func (c *Client) admit(size int) (uint64, chan *vrpcpb.Response, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, nil, status.Error(codes.Unavailable, "vrpc: client is closed")
	}
	if len(c.pending) >= c.cfg.MaxPending {
		return 0, nil, status.Errorf(codes.ResourceExhausted,
			"vrpc: %d calls are pending (%s), the client's max_pending %d; raise max_pending in the client or slow down",
			len(c.pending), c.pendingWhat(), c.cfg.MaxPending)
	}
	if c.pendingBytes+size > c.cfg.MaxPendingBytes {
		return 0, nil, status.Errorf(codes.ResourceExhausted,
			"vrpc: pending calls (%s) hold %d request bytes and this one has %d, over the client's max_pending_bytes %d; raise max_pending_bytes in the client or slow down",
			c.pendingWhat(), c.pendingBytes, size, c.cfg.MaxPendingBytes)
	}
	seq := c.seq.Add(1)
	ch := make(chan *vrpcpb.Response, 1)
	c.pending[seq] = pendingCall{ch: ch, bytes: size, since: time.Now()}
	c.pendingBytes += size
	c.calls.Add(1)
	return seq, ch, nil
}

// pendingWhat says what the pending calls wait for, under c.mu: the bus
// to take their request (most of them while it is down), or their replies.
func (c *Client) pendingWhat() string {
	unsent := min(int(c.unsent.Load()), len(c.pending))
	return fmt.Sprintf("%d waiting for the bus to take their request, %d for their replies", unsent, len(c.pending)-unsent)
}

// take removes the pending call seq and returns its channel, nil if it
// was not pending.
func (c *Client) take(seq uint64) chan *vrpcpb.Response {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.pending[seq]
	if !ok {
		return nil
	}
	delete(c.pending, seq)
	c.pendingBytes -= p.bytes
	return p.ch
}

func (c *Client) forget(seq uint64) { c.take(seq) }

// published marks the pending call seq as taken by the bus.
func (c *Client) published(seq uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.pending[seq]; ok {
		p.published = true
		c.pending[seq] = p
	}
}

// metadataBytes is the size of envelope metadata as max_metadata_bytes
// counts it: keys and values.
func metadataBytes(md []*vrpcpb.Metadata) int {
	n := 0
	for _, m := range md {
		n += len(m.Key)
		for _, v := range m.Values {
			n += len(v)
		}
	}
	return n
}

// replyOverhead is what a reply's envelope may add to its payload and
// metadata: id, status message and details, version.
const replyOverhead = 16 << 10

// boundReply refuses, for its call, a reply whose payload is over
// max_message_bytes or whose envelope (size bytes) is over that plus its
// header and trailer (max_metadata_bytes each) and replyOverhead, as a gRPC
// client refuses a message over its max receive size.
func (c *Client) boundReply(resp *vrpcpb.Response, size int) *vrpcpb.Response {
	limit := c.cfg.MaxMessageBytes + 2*c.cfg.MaxMetadataBytes + replyOverhead
	if len(resp.Payload) <= c.cfg.MaxMessageBytes && size <= limit {
		return resp
	}
	return &vrpcpb.Response{Id: resp.Id, Status: status.Newf(codes.ResourceExhausted,
		"vrpc: received a reply larger than max (payload %d bytes, envelope %d, vs. max_message_bytes %d, envelope %d); raise max_message_bytes in the client",
		len(resp.Payload), size, c.cfg.MaxMessageBytes, limit).Proto()}
}

// outageBackoffMax caps the pause between the attempts of a call that
// waits for a bus that is down (unless retry.interval is longer): once the
// broker is back, a waiting call is published within about this long.
const outageBackoffMax = time.Second

// publish sends req, retrying failures of the bus but never past the
// call's deadline: while the bus cannot be reached (an error wrapping
// rpcbus.ErrUnavailable), or has lost a request topic it had before (a
// broker restarted without its data, whose servers make it again), as long
// as the deadline allows, backing off from retry.interval to at most
// outageBackoffMax; other failures retry.count times, backing off from
// retry.interval. The same request id is published each time, so a server
// that got an earlier attempt can recognise the repeat.
func (c *Client) publish(ctx context.Context, req *vrpcpb.Request) error {
	var body []byte
	var err error
	if c.signer != nil {
		body, err = c.signer.sign(req)
	} else {
		body, err = codec.EncodeRequest(req)
	}
	if err != nil {
		return status.Errorf(codes.Internal, "vrpc: encode request: %v", err)
	}
	topic := c.cfg.Topics.Request + "." + req.Target
	msg := &rpcbus.Message{Value: body}
	c.unsent.Add(1)
	defer c.unsent.Add(-1)
	var bo *backoff.Backoff // made at the first failure: most calls never need it
	retries := 0            // failures other than an outage
	for attempt := 0; ; attempt++ {
		err := c.bus.Publish(ctx, topic, msg)
		outage := errors.Is(err, rpcbus.ErrUnavailable)
		if errors.Is(err, rpcbus.ErrUnknownTopic) {
			if !c.served(topic) {
				return status.Errorf(codes.Unimplemented,
					"vrpc: unknown target %q: no vRPC server serves it (topic %s does not exist on the bus)", req.Target, topic)
			}
			// The topic took requests before: the broker has lost it (a
			// restart without persistence) and the servers are making it
			// again. A passing fault, like a broker that is down.
			err = fmt.Errorf("the bus no longer has topic %s (lost in a broker restart?): %w", topic, err)
			outage = true
		}
		switch {
		case err == nil:
			if !c.served(topic) {
				c.topics.Store(topic, struct{}{})
			}
			return nil
		case errors.Is(err, rpcbus.ErrMessageTooLarge):
			return status.Errorf(codes.ResourceExhausted, "vrpc: the bus refused the request for its size (%d bytes): %v", len(body), err)
		case errors.Is(err, rpcbus.ErrRefused):
			// Credentials, ACLs, cluster settings: retrying changes nothing.
			return status.Errorf(refusedCode(err), "vrpc: the bus refused the request for %s: %v", topic, err)
		case ctx.Err() != nil:
			return notPublished(ctx, topic, err)
		case errors.Is(err, rpcbus.ErrClosed):
			return status.Errorf(codes.Unavailable, "vrpc: publish to %s failed after %d attempt(s): %v", topic, attempt+1, err)
		case !outage && retries >= c.cfg.Retry.Count:
			return status.Errorf(codes.Unavailable, "vrpc: publish to %s failed after %d attempt(s) (retry.count %d): %v", topic, attempt+1, c.cfg.Retry.Count, err)
		}
		if !outage {
			retries++
		}
		if bo == nil {
			bo = backoff.New(backoff.Policy{Initial: c.cfg.Retry.Interval, Max: max(c.cfg.Retry.Interval, min(c.cfg.Retry.Interval<<6, outageBackoffMax)), Jitter: true})
		}
		if !bo.Wait(ctx) {
			return notPublished(ctx, topic, err)
		}
	}
}

// served reports whether a request has been published to topic before:
// the topic of a target some server serves.
func (c *Client) served(topic string) bool {
	_, ok := c.topics.Load(topic)
	return ok
}

// refusedCode is the gRPC code of a refusal of the bus (rpcbus.ErrRefused):
// UNAUTHENTICATED for credentials, PERMISSION_DENIED for permissions,
// FAILED_PRECONDITION for the bus's settings.
func refusedCode(err error) codes.Code {
	switch {
	case errors.Is(err, rpcbus.ErrUnauthenticated):
		return codes.Unauthenticated
	case errors.Is(err, rpcbus.ErrForbidden):
		return codes.PermissionDenied
	}
	return codes.FailedPrecondition
}

// notPublished is the status of a call whose context ended before the bus
// took its request, the last publish failing with err. A cancelled call is
// CANCELED. One that reached its deadline is UNAVAILABLE, not
// DEADLINE_EXCEEDED: the bus was the trouble, and no server runs the
// request (had the broker kept it after all, a server would drop it as
// expired), so the caller may try again.
func notPublished(ctx context.Context, topic string, err error) error {
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return status.FromContextError(ctx.Err()).Err()
	}
	return status.Errorf(codes.Unavailable, "vrpc: the bus did not take the request for %s before the deadline: %v", topic, err)
}

// onReply is the inbox handler: it hands each reply to the call waiting
// for it and drops the rest (replies for a sibling instance with the same
// client id, or for calls that have given up).
func (c *Client) onReply(m *rpcbus.Message) {
	resp, err := codec.DecodeResponse(m.Value)
	if err != nil {
		c.errorf("vrpc: dropping undecodable reply on %s: %v", m.Topic, err)
		return
	}
	rest, ok := strings.CutPrefix(resp.Id, c.idPrefix)
	if !ok {
		return
	}
	seq, err := strconv.ParseUint(rest, 36, 64)
	if err != nil {
		return
	}
	if c.signer != nil {
		// Before the pending call is looked up: a forged reply must not
		// take a call's place, which then waits on for the real one.
		if err := c.signer.verify(m.Value, resp, c.cfg.ClientID); err != nil {
			c.obs.forgedReplies.Inc()
			c.signer.forged(m.Topic, resp.Id, err)
			return
		}
	}
	if ch := c.take(seq); ch != nil {
		ch <- c.boundReply(resp, len(m.Value)) // buffered: never blocks
	} else {
		c.obs.lateReplies.Inc()
	}
}

// result is what Call and Invoke return for what carry returned.
func result(r *vrpcpb.Response, err error) (*Response, error) {
	if err != nil {
		return nil, err
	}
	out := &Response{
		Payload: r.Payload,
		Header:  codec.MetadataFromWire(r.Header),
		Trailer: codec.MetadataFromWire(r.Trailer),
	}
	return out, replyError(r)
}

// replyError is the error of a reply: nil, or its status.
func replyError(r *vrpcpb.Response) error {
	if s := r.GetStatus(); s != nil && s.Code != int32(codes.OK) {
		return status.ErrorProto(s)
	}
	return nil
}

// Close stops taking calls, gives the calls in flight up to
// timeout.connect to get their replies, fails the rest with UNAVAILABLE,
// and closes the reply address, the loopback endpoint and the bus (if the
// client opened it).
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()

	drained := make(chan struct{})
	go func() { c.calls.Wait(); close(drained) }()
	t := time.NewTimer(c.cfg.Timeout.Connect)
	select {
	case <-drained:
		t.Stop()
	case <-t.C:
		c.mu.Lock()
		for seq, p := range c.pending {
			delete(c.pending, seq)
			c.pendingBytes -= p.bytes
			p.ch <- &vrpcpb.Response{Status: status.New(codes.Unavailable, "vrpc: client closed before the reply arrived").Proto()}
		}
		c.mu.Unlock()
		<-drained
	}
	c.mu.Lock()
	lb := c.loopback
	c.mu.Unlock()
	if lb != nil {
		lb.stop()
	}
	err := c.inbox.Close()
	return errors.Join(err, c.closeBus())
}

func (c *Client) closeBus() error {
	if c.ownsBus {
		return c.bus.Close()
	}
	return nil
}

func looksLikeJSON(b []byte) bool {
	for _, ch := range b {
		switch ch {
		case ' ', '\t', '\r', '\n':
			continue
		case '{', '[':
			return json.Valid(b)
		}
		return false
	}
	return false
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = crand.Read(b)
	return hex.EncodeToString(b)
}

// Pending returns the number of pending calls, as max_pending counts
// them: waiting for the bus to take their request, or for their reply.
func (c *Client) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// PendingBytes returns the request bytes of the pending calls, as
// max_pending_bytes counts them.
func (c *Client) PendingBytes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pendingBytes
}

// GetPayload returns r.Payload, or nil when r is nil.
func (r *Response) GetPayload() []byte {
	if r == nil {
		return nil
	}
	return r.Payload
}

// Logger returns the logger the client logs through (WithLogger), for the
// programs built on it, such as the gateway, to log alongside.
func (c *Client) Logger() *slog.Logger { return c.log }

func (c *Client) infof(format string, args ...any) { logf(c.log, slog.LevelInfo, format, args...) }

func (c *Client) errorf(format string, args ...any) { logf(c.log, slog.LevelError, format, args...) }

func logf(log *slog.Logger, level slog.Level, format string, args ...any) {
	ctx := context.Background()
	if log.Enabled(ctx, level) {
		log.Log(ctx, level, fmt.Sprintf(format, args...))
	}
}
