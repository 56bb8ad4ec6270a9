package vserver

import (
	"context"
	"fmt"
	"time"

	"github.com/zeromicro/go-zero/core/logx"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/nextpkg/vrpc/codec"
	"github.com/nextpkg/vrpc/codec/schema"
	"github.com/nextpkg/vrpc/codec/seal"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vrpcpb"
)

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

// job is one delivery on its way through the server's stages: what each
// stage learned, for the stages after it.
type job struct {
	d        *rpcbus.Delivery
	received time.Time // when the server took it off the bus

	req      *vrpcpb.Request // decode
	deadline time.Time       // decode: the caller's; zero when it has none

	client *securedClient // verify: nil when security is off
	sig    *seal.Key      // verify: the key the request was signed with
	sealed bool           // verify: the request's body was sealed

	tgt    *target            // route
	ctx    context.Context    // route: the call's, with its deadline
	cancel context.CancelFunc // route

	key string // claim: the dedup claim the reply completes; "" for none

	desc protoreflect.MethodDescriptor // resolve: nil for a protobuf call by full name
	json bool                          // resolve: the payload is JSON
	call *Call                         // resolve: what the plugins see, the method's full name among it

	// res is the reply to publish; nil publishes none (the request was
	// dropped, or a stored reply was published again). nack keeps the
	// delivery unacknowledged, so that the bus delivers it again.
	res  *Result
	nack bool
}

// finish ends the job's way through the stages with res as its reply.
func (j *job) finish(res *Result) bool {
	j.res = res
	return false
}

// fail ends the job's way through the stages with a status reply.
func (j *job) fail(code codes.Code, format string, args ...any) bool {
	return j.finish(&Result{Status: status.Newf(code, format, args...)})
}

// serve takes one delivery through the server's stages, in order, and
// reports whether it may be acknowledged: not when it was to be set aside
// and could not be, so that it comes again. Each stage either passes the
// request on (true) or ends its way (false), having set the reply if one
// is due. Authentication (verify) comes right after decode: nothing a
// sender without a key sends reaches the dedup store, the target's schema
// or the target, and it gets no answer.
func (s *Server) serve(d *rpcbus.Delivery) bool {
	j := job{d: d, received: time.Now()}
	if s.decode(&j) && s.verify(&j) && s.checkExpiry(&j) && s.route(&j) && s.claim(&j) && s.resolve(&j) {
		s.handle(&j)
	}
	if j.cancel != nil {
		defer j.cancel()
	}
	if j.res != nil {
		s.replyStored(&j)
	}
	return !j.nack
}

// decode reads the envelope. A message that cannot be read, or whose
// payload is over max_message_size, is set aside on the dead-letter topic
// (and answered with INVALID_ARGUMENT when it says where to, unless the
// server authenticates its clients: it answers none it has not verified).
func (s *Server) decode(j *job) bool {
	req, err := codec.DecodeRequest(j.d.Value)
	if err != nil {
		if !s.deadLetter(j.d, err) {
			j.nack = true
			return false
		}
		if req != nil && req.Id != "" && req.ReplyTo != "" && s.guard == nil {
			j.req = req
			return j.fail(codes.InvalidArgument, "vrpc: server %s cannot read the request: %v", s.cfg.Name, err)
		}
		return false
	}
	j.req = req
	if limit := s.cfg.MaxMessageSize; len(req.Payload) > limit {
		// A producer with a larger limit than this server's, or none: the
		// target would refuse it, so it goes where an operator sees it.
		err := fmt.Errorf("payload of %d bytes is over the server's max_message_size of %d", len(req.Payload), limit)
		if !s.deadLetter(j.d, err) {
			j.nack = true
			return false
		}
		if s.guard != nil {
			return false
		}
		return j.fail(codes.InvalidArgument, "vrpc: server %s cannot take the request: %v", s.cfg.Name, err)
	}
	if req.DeadlineUnixNano != 0 {
		j.deadline = time.Unix(0, req.DeadlineUnixNano)
	}
	return true
}

// verify authenticates the request when the server has clients with keys
// (security): a request that is unsigned, signed with a key its client id
// does not have, tampered with, issued outside the replay window, taken
// off another target's topic, asking for replies at an address that is not
// its client's, is dropped: counted, logged, never run and never
// answered. A sealed body is opened. A verified client that may not call
// the target gets PERMISSION_DENIED (its method is checked in resolve).
func (s *Server) verify(j *job) bool {
	if s.guard == nil {
		return true
	}
	j.sealed = len(j.req.Sealed) > 0
	c, k, rej := s.guard.check(j.d.Value, j.req, j.d.Topic, s.cfg.Topics.Request, s.cfg.Topics.Response, j.received)
	if rej != nil {
		s.guard.rejected[rej.reason].Add(1)
		s.guard.logRejection(s.cfg.Name, j.req.Id, rej)
		j.req = nil
		return false
	}
	j.client, j.sig = c, k
	if !c.allow.AllowsTarget(j.req.Target) {
		// The client is who it says: it may learn that it may not.
		s.guard.rejected[rejectNotAllowed].Add(1)
		return j.fail(codes.PermissionDenied, "vrpc: client %q may not call target %s", j.req.ClientId, j.req.Target)
	}
	return true
}

// checkExpiry drops a request whose deadline passed while it was queued:
// the caller has had DEADLINE_EXCEEDED already, so it is not run and not
// answered.
func (s *Server) checkExpiry(j *job) bool {
	if !j.deadline.IsZero() && !j.received.Before(j.deadline) {
		s.expired.Add(1)
		return false
	}
	return true
}

// route finds the request's target and gives the call its deadline: the
// caller's, capped by the target's timeout.
func (s *Server) route(j *job) bool {
	j.tgt = s.targets[j.req.Target]
	if j.tgt == nil {
		return j.fail(codes.Unimplemented, "vrpc: server %s has no target %q", s.cfg.Name, j.req.Target)
	}
	callDeadline := j.received.Add(j.tgt.timeout)
	if !j.deadline.IsZero() && j.deadline.Before(callDeadline) {
		callDeadline = j.deadline
	}
	j.ctx, j.cancel = context.WithDeadline(s.calls, callDeadline)
	return true
}

// claim checks the dedup store. A request served (or being served)
// already ends here: its stored reply, if any, is published again.
// Otherwise the job holds the claim (key) that its reply completes; none
// when deduplication is off or the store failed: serving the call then
// wins over deduplicating it.
func (s *Server) claim(j *job) bool {
	if s.dedup == nil {
		return true
	}
	req := j.req
	// The reply address is part of the key: a stored reply goes back only
	// to the address the request that earned it named, so a message that
	// copies another caller's ids with its own reply address is served (and
	// checked by the plugins, auth among them) as a request of its own.
	key := req.ClientId + "\x00" + req.Id + "\x00" + req.ReplyTo
	ttl := s.cfg.Dedup.TTL
	if !j.deadline.IsZero() {
		ttl = time.Until(j.deadline) + time.Second // the claim outlives the call
	}
	if j.client != nil {
		// A copy of the request is refused as stale once the replay window
		// has passed; until then the claim must be remembered.
		ttl = max(ttl, s.guard.replayTTL(time.Unix(0, req.SentUnixNano), j.received))
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
		return true
	case claimed:
		j.key = key
		return true
	}
	s.duplicates.Add(1)
	if reply != nil {
		s.publish(req, reply)
	}
	return false
}

// resolve turns the request into the Call the plugins see: the method's
// full name however the caller spelled it (a short name through the
// target's schema) and the payload as protobuf (JSON transcoded through
// the schema). A full name with a protobuf payload needs no schema: the
// bytes pass through.
func (s *Server) resolve(j *job) bool {
	req := j.req
	j.json = req.Encoding == vrpcpb.Encoding_ENCODING_JSON
	if req.Encoding != vrpcpb.Encoding_ENCODING_PROTO && !j.json {
		return j.fail(codes.InvalidArgument, "vrpc: payload encoding %d is not known to this server; send protobuf or JSON", req.Encoding)
	}
	method, full := fullMethod(req.Method)
	if !full || j.json {
		desc, st := j.tgt.describe(j.ctx, req.Method)
		if st != nil {
			return j.finish(&Result{Status: st})
		}
		j.desc, method = desc, schema.FullMethod(desc)
	}
	if j.client != nil && !j.client.allow.Allows(req.Target, method) {
		s.guard.rejected[rejectNotAllowed].Add(1)
		return j.fail(codes.PermissionDenied, "vrpc: client %q may not call %s on target %s", req.ClientId, method, req.Target)
	}
	payload := req.Payload
	if j.json {
		var err error
		if payload, err = j.tgt.schema.JSONToProto(j.ctx, j.desc, req.Payload); err != nil {
			return j.finish(&Result{Status: status.Convert(err)})
		}
	}
	j.call = &Call{
		ID:           req.Id,
		ClientID:     req.ClientId,
		Target:       req.Target,
		Method:       method,
		Payload:      payload,
		Metadata:     codec.MetadataFromWire(req.Metadata),
		Deadline:     j.deadline,
		SentAt:       time.Unix(0, req.SentUnixNano),
		ReceivedAt:   j.received,
		TraceContext: req.TraceContext,
	}
	return true
}

// handle runs the call through the plugins to the target (forward), and
// turns a JSON call's reply back into JSON.
func (s *Server) handle(j *job) {
	res := s.handler(j.ctx, j.call)
	if j.key != "" && s.calls.Err() != nil && res.Status.Code() == codes.Unavailable {
		// Cut short by Stop: let the next delivery run it.
		_ = s.dedup.Release(context.Background(), j.key)
		j.key = ""
	}
	if j.json && res.Status == nil {
		o := schema.JSONOptions{UseProtoNames: j.req.GetJsonOptions().GetUseProtoNames(), EmitDefaults: j.req.GetJsonOptions().GetEmitDefaults()}
		if b, err := j.tgt.schema.ProtoToJSON(j.ctx, j.desc, res.Payload, o); err != nil {
			res.Status, res.Payload = status.Convert(err), nil
		} else {
			res.Payload = b
		}
	}
	j.res = res
}
