package benchkit

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nextpkg/vrpc/codec"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vrpcpb"
)

// The names RawBus uses on the bus unless RawNames says otherwise. They
// are fixed so that runs against a real Kafka do not leave a new topic
// behind each time.
const (
	RawTopic = "vrpc.requests.bench-raw"
	RawGroup = "vrpc-bench-raw"
	RawInbox = "vrpc.responses.bench-raw"
)

// RawNames are the names a RawBus uses: the request topic, the responding
// group and the caller's inbox name. Empty fields take RawTopic, RawGroup
// and RawInbox.
type RawNames struct {
	Topic, Group, Inbox string
}

func (n RawNames) withDefaults() RawNames {
	if n.Topic == "" {
		n.Topic = RawTopic
	}
	if n.Group == "" {
		n.Group = RawGroup
	}
	if n.Inbox == "" {
		n.Inbox = RawInbox
	}
	return n
}

// rawTimeout is the deadline of a raw call whose context has none, as
// vclient's timeout.request is for vRPC calls.
const rawTimeout = 30 * time.Second

// RawBus is the bus round trip of a vRPC call with no gRPC on either side:
// the same envelopes (codec), the same shapes (a request topic consumed by
// a group, a reply inbox per caller, one goroutine per delivery on the
// responding side, a pending-reply map on the calling side), on two buses
// of their own as a client and a server would have.
type RawBus struct {
	caller, responder rpcbus.Bus
	inbox             rpcbus.Inbox
	sub               rpcbus.Subscription
	topic             string
	idPrefix          string
	seq               atomic.Uint64

	mu      sync.Mutex
	pending map[uint64]chan *vrpcpb.Response

	// handlers counts responder goroutines; publishes is the context they
	// publish under, cancelled by Close.
	handlers  sync.WaitGroup
	publishes context.Context
	cancel    context.CancelFunc
}

// NewRawBus opens a responder and a caller on the bus cfg describes and
// returns once the responder consumes the request topic and the caller's
// inbox is open.
func NewRawBus(ctx context.Context, cfg rpcbus.Config, names RawNames) (r *RawBus, err error) {
	names = names.withDefaults()
	r = &RawBus{
		topic:    names.Topic,
		idPrefix: "raw-" + randomHex(6) + "-",
		pending:  make(map[uint64]chan *vrpcpb.Response),
	}
	r.publishes, r.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			_ = r.Close()
			r = nil
		}
	}()
	if r.responder, err = rpcbus.New(cfg); err != nil {
		return r, err
	}
	if r.caller, err = rpcbus.New(cfg); err != nil {
		return r, err
	}
	if tc, ok := r.responder.(rpcbus.TopicCreator); ok {
		if err := tc.CreateTopics(ctx, names.Topic); err != nil {
			return r, fmt.Errorf("create %s: %w", names.Topic, err)
		}
	}
	r.sub, err = r.responder.Subscribe(ctx, rpcbus.SubscribeOptions{Topics: []string{names.Topic}, Group: names.Group}, r.respond)
	if err != nil {
		return r, fmt.Errorf("consume %s: %w", names.Topic, err)
	}
	inboxer, ok := r.caller.(rpcbus.Inboxer)
	if !ok {
		return r, fmt.Errorf("rpc_bus.type %q has no reply inbox", cfg.Type)
	}
	if r.inbox, err = inboxer.Inbox(ctx, names.Inbox, r.onReply); err != nil {
		return r, fmt.Errorf("open inbox %s: %w", names.Inbox, err)
	}
	return r, nil
}

// Call publishes payload in a request envelope and returns the payload of
// the reply envelope, which the responder echoes.
func (r *RawBus) Call(ctx context.Context, payload []byte) ([]byte, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		var cancel context.CancelFunc
		deadline = time.Now().Add(rawTimeout)
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	seq := r.seq.Add(1)
	ch := make(chan *vrpcpb.Response, 1)
	r.mu.Lock()
	r.pending[seq] = ch
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.pending, seq)
		r.mu.Unlock()
	}()

	body, err := codec.EncodeRequest(&vrpcpb.Request{
		Id:               r.idPrefix + strconv.FormatUint(seq, 36),
		ClientId:         "bench-raw",
		ReplyTo:          r.inbox.Address(),
		Target:           "bench-raw",
		Method:           "/demo.Demo/Ping",
		Payload:          payload,
		DeadlineUnixNano: deadline.UnixNano(),
		SentUnixNano:     time.Now().UnixNano(),
	})
	if err != nil {
		return nil, err
	}
	if err := r.caller.Publish(ctx, r.topic, &rpcbus.Message{Value: body}); err != nil {
		return nil, err
	}
	select {
	case resp := <-ch:
		return resp.Payload, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// respond runs on the subscription's goroutine and hands the delivery to
// a goroutine of its own, as vserver does.
func (r *RawBus) respond(d *rpcbus.Delivery) {
	r.handlers.Add(1)
	go func() {
		defer r.handlers.Done()
		defer d.Ack()
		req, err := codec.DecodeRequest(d.Value)
		if err != nil {
			return
		}
		body, err := codec.EncodeResponse(&vrpcpb.Response{
			Id:               req.Id,
			Payload:          req.Payload,
			ReceivedUnixNano: time.Now().UnixNano(),
		})
		if err != nil {
			return
		}
		ctx, cancel := context.WithDeadline(r.publishes, time.Unix(0, req.DeadlineUnixNano))
		defer cancel()
		_ = r.responder.Publish(ctx, req.ReplyTo, &rpcbus.Message{Value: body})
	}()
}

func (r *RawBus) onReply(m *rpcbus.Message) {
	resp, err := codec.DecodeResponse(m.Value)
	if err != nil {
		return
	}
	rest, ok := strings.CutPrefix(resp.Id, r.idPrefix)
	if !ok {
		return
	}
	seq, err := strconv.ParseUint(rest, 36, 64)
	if err != nil {
		return
	}
	r.mu.Lock()
	ch := r.pending[seq]
	delete(r.pending, seq)
	r.mu.Unlock()
	if ch != nil {
		ch <- resp // buffered: never blocks
	}
}

// Close closes the inbox, lets the responder finish what it took, and
// closes both buses.
func (r *RawBus) Close() error {
	var errs []error
	if r.inbox != nil {
		errs = append(errs, r.inbox.Close())
	}
	if r.sub != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		errs = append(errs, r.sub.Close(ctx))
		cancel()
	}
	r.cancel()
	r.handlers.Wait()
	if r.caller != nil {
		errs = append(errs, r.caller.Close())
	}
	if r.responder != nil {
		errs = append(errs, r.responder.Close())
	}
	return errors.Join(errs...)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = crand.Read(b)
	return hex.EncodeToString(b)
}
