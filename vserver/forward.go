package vserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/zeromicro/go-zero/core/logx"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	encproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/nextpkg/vrpc/codec"
	"github.com/nextpkg/vrpc/codec/schema"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vrpcpb"
)

// DeadLetterSuffix is appended to a request topic to name the topic that
// holds the messages the server could not read.
const DeadLetterSuffix = ".dlq"

// DeadLetterReasonHeader is the header of a dead letter that says why it
// was set aside.
const DeadLetterReasonHeader = "vrpc-dlq-reason"

// workerIdle is how long a worker waits for the next delivery before it
// exits.
const workerIdle = 10 * time.Second

// onDelivery runs on the subscription's goroutine: it only hands the
// delivery to an idle worker, or to a new one when none is idle. The bus
// bounds the deliveries unacknowledged at once (max_in_flight), and so the
// workers. Workers outlive a delivery so that the stacks they have grown
// through the gRPC call are reused, not grown again for every request.
func (s *Server) onDelivery(d *rpcbus.Delivery) {
	select {
	case s.work <- d:
		return
	default:
	}
	s.inflight.Add(1)
	go s.worker(d)
}

func (s *Server) worker(d *rpcbus.Delivery) {
	defer s.inflight.Done()
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		s.busy.Add(1)
		if s.serve(d) {
			d.Ack() // only once the reply is published (or given up on)
		}
		s.busy.Add(-1)
		idle.Reset(workerIdle)
		select {
		case d = <-s.work:
		case <-idle.C:
			return
		case <-s.quit:
			return
		}
	}
}

// serve handles one delivery and reports whether it may be acknowledged:
// not when it was to be set aside and could not be, so that it comes again.
func (s *Server) serve(d *rpcbus.Delivery) bool {
	received := time.Now()
	req, err := codec.DecodeRequest(d.Value)
	if err != nil {
		if !s.deadLetter(d, err) {
			return false
		}
		if req != nil && req.Id != "" && req.ReplyTo != "" {
			s.reply(req, &Result{Status: status.Newf(codes.InvalidArgument, "vrpc: server %s cannot read the request: %v", s.cfg.Name, err)}, received)
		}
		return true
	}
	if limit := s.cfg.MaxMessageSize; len(req.Payload) > limit {
		// A producer with a larger limit than this server's, or none: the
		// target would refuse it, so it goes where an operator sees it.
		err := fmt.Errorf("payload of %d bytes is over the server's max_message_size of %d", len(req.Payload), limit)
		if !s.deadLetter(d, err) {
			return false
		}
		s.reply(req, &Result{Status: status.Newf(codes.InvalidArgument, "vrpc: server %s cannot take the request: %v", s.cfg.Name, err)}, received)
		return true
	}
	s.call(req, received)
	return true
}

// call serves a request that has been read.
func (s *Server) call(req *vrpcpb.Request, received time.Time) {
	var deadline time.Time
	if req.DeadlineUnixNano != 0 {
		deadline = time.Unix(0, req.DeadlineUnixNano)
		if !received.Before(deadline) {
			// The caller has already got DEADLINE_EXCEEDED: do not run it.
			s.expired.Add(1)
			return
		}
	}
	tgt := s.targets[req.Target]
	if tgt == nil {
		s.reply(req, &Result{Status: status.Newf(codes.Unimplemented,
			"vrpc: server %s has no target %q", s.cfg.Name, req.Target)}, received)
		return
	}
	key, served := s.claim(req, deadline)
	if served {
		return
	}
	jsonCall := req.Encoding == vrpcpb.Encoding_ENCODING_JSON
	if req.Encoding != vrpcpb.Encoding_ENCODING_PROTO && !jsonCall {
		s.replyStored(req, &Result{Status: status.Newf(codes.InvalidArgument,
			"vrpc: payload encoding %d is not known to this server; send protobuf or JSON", req.Encoding)}, received, key)
		return
	}
	callDeadline := received.Add(tgt.timeout)
	if !deadline.IsZero() && deadline.Before(callDeadline) {
		callDeadline = deadline
	}
	ctx, cancel := context.WithDeadline(s.calls, callDeadline)
	defer cancel()
	// Resolve before the plugins run, so that they all see the full method
	// name however the caller spelled it. A full name with a protobuf
	// payload needs no schema: the bytes pass through.
	method, full := fullMethod(req.Method)
	var desc protoreflect.MethodDescriptor
	if !full || jsonCall {
		var st *status.Status
		if desc, st = tgt.describe(ctx, req.Method); st != nil {
			s.replyStored(req, &Result{Status: st}, received, key)
			return
		}
		method = schema.FullMethod(desc)
	}
	payload := req.Payload
	if jsonCall {
		var err error
		if payload, err = tgt.schema.JSONToProto(ctx, desc, req.Payload); err != nil {
			s.replyStored(req, &Result{Status: status.Convert(err)}, received, key)
			return
		}
	}
	call := &Call{
		ID:           req.Id,
		ClientID:     req.ClientId,
		Target:       req.Target,
		Method:       method,
		Payload:      payload,
		Metadata:     codec.MetadataFromWire(req.Metadata),
		Deadline:     deadline,
		SentAt:       time.Unix(0, req.SentUnixNano),
		ReceivedAt:   received,
		TraceContext: req.TraceContext,
	}
	res := s.handler(ctx, call)
	if key != "" && s.calls.Err() != nil && res.Status.Code() == codes.Unavailable {
		// Cut short by Stop: let the next delivery run it.
		_ = s.dedup.Release(context.Background(), key)
		key = ""
	}
	if jsonCall && res.Status == nil {
		o := schema.JSONOptions{UseProtoNames: req.GetJsonOptions().GetUseProtoNames(), EmitDefaults: req.GetJsonOptions().GetEmitDefaults()}
		if b, err := tgt.schema.ProtoToJSON(ctx, desc, res.Payload, o); err != nil {
			res.Status, res.Payload = status.Convert(err), nil
		} else {
			res.Payload = b
		}
	}
	s.replyStored(req, res, received, key)
}

// claim checks the dedup store for req. It reports served when the request
// has been (or is being) served already: the stored reply, if any, has been
// published again and the delivery needs nothing more. Otherwise key is the
// claim to complete with the reply ("" when deduplication is off or the
// store failed: serving the call then wins over deduplicating it).
func (s *Server) claim(req *vrpcpb.Request, deadline time.Time) (key string, served bool) {
	if s.dedup == nil {
		return "", false
	}
	// The reply address is part of the key: a stored reply goes back only
	// to the address the request that earned it named, so a message that
	// copies another caller's ids with its own reply address is served (and
	// checked by the plugins, auth among them) as a request of its own.
	key = req.ClientId + "\x00" + req.Id + "\x00" + req.ReplyTo
	ttl := s.cfg.Dedup.TTL
	if !deadline.IsZero() {
		ttl = time.Until(deadline) + time.Second // the claim outlives the call
	}
	ctx := context.Background()
	if _, inMemory := s.dedup.(*MemoryDedup); !inMemory {
		// A store across the network is given 5s. The one in memory never
		// waits: a timer for it would cost more than the claim itself.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	reply, claimed, err := s.dedup.Claim(ctx, key, ttl)
	switch {
	case err != nil:
		logx.Errorf("vrpc server %s: dedup store: %v; serving %s without it", s.cfg.Name, err, req.Id)
		return "", false
	case claimed:
		return key, false
	}
	s.duplicates.Add(1)
	if reply != nil {
		s.publish(req, reply)
	}
	return "", true
}

// forward is the innermost handler: the gRPC call to the target, with the
// request's bytes as they came and the reply's as they go.
func (s *Server) forward(ctx context.Context, call *Call) *Result {
	tgt := s.targets[call.Target]
	if call.Method == codec.ReflectionMethod {
		return s.reflect(ctx, tgt, call)
	}
	if len(call.Metadata) > 0 {
		ctx = metadata.NewOutgoingContext(ctx, call.Metadata)
	}
	f := &forwarding{in: codec.Frame(call.Payload)}
	res := &f.res
	f.opts = [5]grpc.CallOption{rawCodec, protoSubtype, grpc.Header(&res.Header), grpc.Trailer(&res.Trailer)}
	start := time.Now()
	err := s.invoke(ctx, tgt, call.Method, &f.in, &f.out, f.opts[:4])
	res.TargetTime = time.Since(start)
	if err != nil {
		res.Status = status.Convert(err)
		if errors.Is(ctx.Err(), context.Canceled) && s.calls.Err() != nil {
			res.Status = status.Newf(codes.Unavailable, "vrpc: server %s stopped before %s returned", s.cfg.Name, call.Target)
		}
		return res
	}
	res.Payload = f.out
	return res
}

// forwarding is what forward hands gRPC for one call, in one allocation
// instead of one for each part: the frames, the call options (and room
// for invoke's grpc.Peer) and the Result the header and trailer go to.
type forwarding struct {
	res     Result
	in, out codec.Frame
	opts    [5]grpc.CallOption
}

// rawCodec passes the bytes of a call through; protoSubtype keeps the
// content type the target sees "application/grpc+proto". Without it gRPC
// names the codec's own subtype ("application/grpc+vrpc-raw"), which a
// target does not know: gRPC-Go falls back to protobuf with a warning
// logged for every call, and other implementations may refuse it.
var (
	rawCodec     = grpc.ForceCodecV2(codec.Raw{})
	protoSubtype = grpc.CallContentSubtype(encproto.Name)
)

// invoke calls method on the target. A call that fails with UNAVAILABLE
// before it reached the target (no connection to send it on, so the target
// cannot have run it) is tried again up to max_retries times, backing off
// exponentially from 50ms with jitter, while the call's deadline leaves
// room. Idempotent methods are retried by gRPC's retry policy instead,
// after more codes (see retryPolicy). opts are the call's options,
// rawCodec and protoSubtype among them.
func (s *Server) invoke(ctx context.Context, tgt *target, method string, in, out *codec.Frame, opts []grpc.CallOption) error {
	if tgt.maxRetries == 0 || tgt.isIdempotent(method) {
		return invokeOnce(ctx, tgt.conn, method, in, out, opts)
	}
	var p peer.Peer
	opts = append(opts, grpc.Peer(&p))
	for attempt := 0; ; attempt++ {
		p = peer.Peer{}
		err := invokeOnce(ctx, tgt.conn, method, in, out, opts)
		if err == nil || attempt == tgt.maxRetries || p.Addr != nil || status.Code(err) != codes.Unavailable {
			// Done, out of tries, or the request reached the target: it
			// may have run it.
			return err
		}
		backoff := min(50*time.Millisecond<<attempt, time.Second)
		backoff = backoff/2 + rand.N(backoff/2+1)
		if d, ok := ctx.Deadline(); ok && time.Until(d) < backoff {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		if tgt.mayRedial() {
			tgt.conn.ResetConnectBackoff() // the target may be back
		}
	}
}

// oneReply is how a call goes to the target: one request message, and a
// reply that may, as far as gRPC is concerned, be a stream. A unary call
// (grpc.ClientConn.Invoke) would take a second reply message as a protocol
// violation (INTERNAL); vRPC cannot tell a server-streaming method from a
// unary one without the target's schema, so it reads the stream itself and
// ends a call answered with more than one message as UNIMPLEMENTED.
var oneReply = &grpc.StreamDesc{ServerStreams: true}

// invokeOnce is grpc.ClientConn.Invoke for a call whose reply must be one
// message. A target that sends more is left to the call's context, which
// the caller cancels once it has replied.
func invokeOnce(ctx context.Context, conn *grpc.ClientConn, method string, in, out *codec.Frame, opts []grpc.CallOption) error {
	cs, err := conn.NewStream(ctx, oneReply, method, opts...)
	if err != nil {
		return err
	}
	// For a stream that is not client-streaming, SendMsg half-closes too;
	// io.EOF means the target has ended the call, whose status RecvMsg has.
	if err := cs.SendMsg(in); err != nil && err != io.EOF {
		return err
	}
	if err := cs.RecvMsg(out); err != nil {
		if err == io.EOF {
			return status.Error(codes.Internal, "vrpc: the target ended the call with OK and no reply message")
		}
		return err
	}
	var extra codec.Frame
	switch err := cs.RecvMsg(&extra); err {
	case io.EOF:
		return nil // the status was OK: the header and trailer are set
	case nil:
		return status.Errorf(codes.Unimplemented,
			"vrpc: %s answered with more than one message: it is a server-streaming method, and vRPC carries unary calls only (streaming is not supported yet)", method)
	default:
		return err
	}
}

// reflect answers one server reflection request with the target's own
// reflection service (see codec.ReflectionMethod).
func (s *Server) reflect(ctx context.Context, tgt *target, call *Call) *Result {
	req := new(rpb.ServerReflectionRequest)
	if err := proto.Unmarshal(call.Payload, req); err != nil {
		return &Result{Status: status.Newf(codes.InvalidArgument, "vrpc: bad server reflection request: %v", err)}
	}
	start := time.Now()
	resp, err := tgt.reflect(ctx, req, call.Metadata)
	res := &Result{TargetTime: time.Since(start)}
	if err != nil {
		res.Status = status.Convert(err)
		return res
	}
	if res.Payload, err = proto.Marshal(resp); err != nil {
		res.Status = status.Newf(codes.Internal, "vrpc: encode reflection response: %v", err)
	}
	return res
}

// reply publishes the result to the request's reply address.
func (s *Server) reply(req *vrpcpb.Request, res *Result, received time.Time) {
	s.replyStored(req, res, received, "")
}

// replyStored is reply that first keeps the encoded reply in the dedup
// store under key (when key is set): a delivery of the same request that
// comes after this point is answered from the store, even if this server
// dies before publishing or acknowledging.
func (s *Server) replyStored(req *vrpcpb.Request, res *Result, received time.Time, key string) {
	resp := &vrpcpb.Response{
		Id:               req.Id,
		Payload:          res.Payload,
		Header:           codec.MetadataToWire(res.Header),
		Trailer:          codec.MetadataToWire(res.Trailer),
		Encoding:         req.Encoding,
		ReceivedUnixNano: received.UnixNano(),
		TargetNanos:      int64(res.TargetTime),
	}
	if res.Status != nil && res.Status.Code() != codes.OK {
		resp.Status = res.Status.Proto()
		resp.Payload = nil
	}
	body, err := codec.EncodeResponse(resp)
	if err != nil {
		// Such as a status message that is not UTF-8: answer with what can
		// be sent rather than leave the caller waiting for its deadline.
		logx.Errorf("vrpc server %s: encode reply to %s: %v", s.cfg.Name, req.Id, err)
		st := &spb.Status{Code: int32(codes.Internal), Message: "vrpc: the reply could not be encoded: " + strings.ToValidUTF8(err.Error(), "?")}
		if resp.Status != nil {
			st.Code, st.Message = resp.Status.Code, strings.ToValidUTF8(resp.Status.Message, "\uFFFD")
		}
		body, err = codec.EncodeResponse(&vrpcpb.Response{Id: req.Id, Status: st, ReceivedUnixNano: resp.ReceivedUnixNano, TargetNanos: resp.TargetNanos})
		if err != nil {
			return
		}
	}
	if key != "" {
		if err := s.dedup.Done(context.Background(), key, body, s.cfg.Dedup.TTL); err != nil {
			logx.Errorf("vrpc server %s: dedup store: keep reply to %s: %v", s.cfg.Name, req.Id, err)
		}
	}
	s.publish(req, body)
}

// publish sends an encoded reply to the request's reply address. Failures
// of the bus are retried until the caller's deadline; a reply address that
// no longer exists (the client has gone) is given up at once.
func (s *Server) publish(req *vrpcpb.Request, body []byte) {
	deadline := time.Now().Add(5 * time.Second)
	if req.DeadlineUnixNano != 0 {
		if d := time.Unix(0, req.DeadlineUnixNano); d.After(deadline) {
			deadline = d
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	msg := &rpcbus.Message{Value: body}
	for backoff := 10 * time.Millisecond; ; backoff = min(2*backoff, time.Second) {
		err := s.bus.Publish(ctx, req.ReplyTo, msg)
		if err == nil {
			return
		}
		if errors.Is(err, rpcbus.ErrUnknownTopic) || errors.Is(err, rpcbus.ErrClosed) || errors.Is(err, rpcbus.ErrMessageTooLarge) {
			logx.Errorf("vrpc server %s: reply to %s at %s dropped: %v", s.cfg.Name, req.Id, req.ReplyTo, err)
			return
		}
		select {
		case <-ctx.Done():
			logx.Errorf("vrpc server %s: reply to %s at %s not published before the caller's deadline: %v", s.cfg.Name, req.Id, req.ReplyTo, err)
			return
		case <-time.After(backoff):
		}
	}
}

// deadLetter sets aside a message the server cannot read, on the request
// topic's dead-letter topic, with the reason in a header. It tries until
// the message is there or the server's calls are cancelled (Stop ran out of
// drain_timeout), and reports whether it is there: a message not set aside
// is not acknowledged, so that it is not lost.
func (s *Server) deadLetter(d *rpcbus.Delivery, reason error) bool {
	s.deadLetters.Add(1)
	topic := d.Topic + DeadLetterSuffix
	logx.Errorf("vrpc server %s: setting aside a message from %s on %s: %v", s.cfg.Name, d.Topic, topic, reason)
	headers := map[string]string{DeadLetterReasonHeader: reason.Error(), "vrpc-dlq-topic": d.Topic}
	for k, v := range d.Headers {
		if !strings.HasPrefix(k, "vrpc-dlq-") {
			headers[k] = v
		}
	}
	msg := &rpcbus.Message{Key: d.Key, Value: d.Value, Headers: headers}
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		err := s.setAside(topic, msg)
		if err == nil {
			return true
		}
		if errors.Is(err, rpcbus.ErrClosed) {
			return false
		}
		logx.Errorf("vrpc server %s: dead-letter to %s: %v; trying again in %v", s.cfg.Name, topic, err, backoff)
		select {
		case <-s.calls.Done():
			logx.Errorf("vrpc server %s: stopping with a message of %s not set aside; it stays unacknowledged", s.cfg.Name, d.Topic)
			return false
		case <-time.After(backoff):
		}
	}
}

func (s *Server) setAside(topic string, msg *rpcbus.Message) error {
	ctx, cancel := context.WithTimeout(s.calls, 10*time.Second)
	defer cancel()
	if tc, ok := s.bus.(rpcbus.TopicCreator); ok {
		if err := tc.CreateTopics(ctx, topic); err != nil {
			return fmt.Errorf("create the topic: %w", err)
		}
	}
	return s.bus.Publish(ctx, topic, msg)
}
