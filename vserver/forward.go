package vserver

import (
	"context"
	"errors"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	encproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/nextpkg/vrpc/codec"
	"github.com/nextpkg/vrpc/internal/backoff"
)

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
	bo := backoff.New(backoff.Policy{Initial: 50 * time.Millisecond, Max: time.Second, Jitter: true})
	for attempt := 0; ; attempt++ {
		p = peer.Peer{}
		err := invokeOnce(ctx, tgt.conn, method, in, out, opts)
		if err == nil || attempt == tgt.maxRetries || p.Addr != nil || status.Code(err) != codes.Unavailable {
			// Done, out of tries, or the request reached the target: it
			// may have run it.
			return err
		}
		if !bo.Fits(ctx) || !bo.Wait(ctx) {
			return err // no room left before the call's deadline
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
