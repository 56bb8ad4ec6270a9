package vserver

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/nextpkg/vrpc/codec"
	"github.com/nextpkg/vrpc/codec/schema"
	"github.com/nextpkg/vrpc/codec/seal"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vrpcpb"
	"github.com/nextpkg/vrpc/vserver/plugin"
)

// workerIdle is how long a worker waits for the next delivery before it
// exits.
const workerIdle = 10 * time.Second

// onDelivery runs on the subscription's goroutine: it only hands the
// delivery to an idle worker, or to a new one when none is idle. The bus
// bounds the deliveries unacknowledged at once (max_in_flight), and so the
// workers; the byte gate bounds their bytes (max_in_flight_bytes): while
// the requests in flight hold too many, onDelivery waits, and so the bus
// keeps the rest. Workers outlive a delivery so that the stacks they have
// grown through the gRPC call are reused, not grown again for every
// request.
func (s *Server) onDelivery(d *rpcbus.Delivery) {
	s.pending.Add(1)
	t := task{d: d, size: deliverySize(d)}
	if t.size > s.gate.max || len(d.Value) > s.maxEnvelope() {
		// Never decoded: only its header fields are peeked at, so it
		// holds no more than the bus's copy and takes no room.
		t.oversize, t.size = true, 0
	} else {
		s.gate.take(t.size, s.quit)
	}
	select {
	case s.work <- t:
		return
	default:
	}
	s.inflight.Add(1)
	go s.worker(t)
}

// task is a delivery handed to a worker, with the bytes it holds of
// max_in_flight_bytes.
type task struct {
	d        *rpcbus.Delivery
	size     int64
	oversize bool // over max_in_flight_bytes, or larger than any request this server takes
}

// maxEnvelope is the largest request envelope the server decodes: a
// payload of max_message_size with metadata, ids and fields at their
// limits.
func (s *Server) maxEnvelope() int {
	return s.cfg.MaxMessageSize + s.cfg.MaxMetadataBytes + 5*s.cfg.MaxIDBytes + envelopeOverhead
}

func (s *Server) worker(t task) {
	defer s.inflight.Done()
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		s.busy.Add(1)
		if s.serve(t) {
			t.d.Ack() // only once the reply is published (or given up on)
		} else {
			s.unacked.Add(1)
		}
		s.gate.give(t.size)
		s.pending.Add(-1)
		s.progress.done(time.Now())
		s.busy.Add(-1)
		idle.Reset(workerIdle)
		select {
		case t = <-s.work:
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

	slot bool   // admitClient: holds one of its client's max_in_flight_per_client
	key  string // claim: the dedup claim the reply completes; "" for none

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
// is due. The limits come first, before anything is kept: decode bounds
// ids and metadata, admitClient a client's share of the slots.
// Authentication (verify) comes right after decode: nothing a sender
// without a key sends reaches the dedup store, the target's schema or the
// target, and it gets no answer.
func (s *Server) serve(t task) bool {
	j := job{d: t.d, received: time.Now()}
	if t.oversize {
		s.refuseOversize(&j)
	} else if s.decode(&j) && s.verify(&j) && s.checkExpiry(&j) && s.route(&j) && s.admitClient(&j) && s.claim(&j) && s.resolve(&j) {
		s.handle(&j)
	}
	if j.cancel != nil {
		defer j.cancel()
	}
	if j.res != nil {
		s.replyStored(&j)
	}
	if j.slot {
		s.clients.give(j.req.ClientId)
	}
	return !j.nack
}

// refuseOversize sets aside a record over max_in_flight_bytes, or larger
// than any request within max_message_size and the other limits can be,
// without decoding it.
func (s *Server) refuseOversize(j *job) {
	err := fmt.Errorf("record of %d bytes is over the server's max_message_size of %d plus room for metadata and ids (%d in all)", len(j.d.Value), s.cfg.MaxMessageSize, s.maxEnvelope())
	limit := limitMessageSize
	if size := deliverySize(j.d); size > s.gate.max {
		limit, err = limitInFlightBytes, fmt.Errorf("record of %d bytes is over the server's max_in_flight_bytes of %d", size, s.gate.max)
	}
	s.refuse(j, codes.ResourceExhausted, limit, err)
}

// refuse sets aside a request over one of the server's limits, counts it,
// and answers it with code when it says where to in an id and reply
// address within max_id_bytes: only those fields are read, not decoded
// (a reply to a 2 MiB address, or carrying a 2 MiB id back, is not sent).
// A server that authenticates its clients answers none: the request is
// not verified.
func (s *Server) refuse(j *job, code codes.Code, limit string, err error) {
	s.limits.refused.WithLabelValues(limit).Inc()
	if !s.deadLetter(j.d, err) {
		j.nack = true
		return
	}
	h, perr := codec.PeekRequest(j.d.Value, s.cfg.MaxIDBytes)
	if perr == nil && h.Id != "" && h.ReplyTo != "" && s.guard == nil {
		j.req = &vrpcpb.Request{Id: h.Id, ClientId: h.ClientId, ReplyTo: h.ReplyTo, Target: h.Target, Method: h.Method}
		j.fail(code, "vrpc: server %s cannot take the request: %v", s.cfg.Name, err)
	}
}

// decode reads the envelope. A message whose ids, metadata or payload are
// over max_id_bytes, max_metadata_bytes or max_message_size is refused
// before it is decoded: set aside on the dead-letter topic and answered
// (see refuse). A message that cannot be read is set aside too, and
// answered INVALID_ARGUMENT when it says where to, unless the server
// authenticates its clients: it answers none it has not verified.
func (s *Server) decode(j *job) bool {
	if z, err := codec.MeasureRequest(j.d.Value); err == nil {
		if code, limit, err := s.checkSizes(z); err != nil {
			s.refuse(j, code, limit, err)
			return false
		}
	}
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
	c, k, rej := s.guard.check(j.d.Value, j.req, j.d.Topic, j.received)
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

// checkSizes returns the status code, limit and error of a request whose
// field sizes are over the server's limits; nil error when none is.
func (s *Server) checkSizes(z codec.RequestSizes) (codes.Code, string, error) {
	field, n := "id", z.Id
	for _, f := range []struct {
		name string
		n    int
	}{{"client_id", z.ClientId}, {"reply_to", z.ReplyTo}, {"target", z.Target}, {"method", z.Method}} {
		if f.n > n {
			field, n = f.name, f.n
		}
	}
	switch {
	case n > s.cfg.MaxIDBytes:
		return codes.InvalidArgument, limitIDBytes, fmt.Errorf("%s of %d bytes is over the server's max_id_bytes of %d", field, n, s.cfg.MaxIDBytes)
	case z.Metadata > s.cfg.MaxMetadataBytes:
		return codes.ResourceExhausted, limitMetadataBytes, fmt.Errorf("metadata and trace context of %d bytes are over the server's max_metadata_bytes of %d", z.Metadata, s.cfg.MaxMetadataBytes)
	case z.Payload > s.cfg.MaxMessageSize:
		// A producer with a larger limit than this server's, or none: the
		// target would refuse it, so it goes where an operator sees it.
		return codes.InvalidArgument, limitMessageSize, fmt.Errorf("payload of %d bytes is over the server's max_message_size of %d", z.Payload, s.cfg.MaxMessageSize)
	}
	return codes.OK, "", nil
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

// admitClient holds one of the request's client's max_in_flight_per_client
// slots until its reply is published, or refuses it with
// RESOURCE_EXHAUSTED: one client cannot take every slot of a server it
// shares with others. It comes after route, so that a request for no
// target does not count, and before claim, so that a refused request is
// not remembered as served.
func (s *Server) admitClient(j *job) bool {
	if s.clients == nil {
		return true
	}
	if !s.clients.take(j.req.ClientId) {
		s.limits.refused.WithLabelValues(limitPerClient).Inc()
		return j.fail(codes.ResourceExhausted, "vrpc: server %s is serving max_in_flight_per_client (%d) requests of client %q already; try again later",
			s.cfg.Name, s.clients.max, j.req.ClientId)
	}
	j.slot = true
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
		s.errorf("vrpc server %s: dedup store: %v; serving %s without it", s.cfg.Name, err, plugin.Clip(req.Id))
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
