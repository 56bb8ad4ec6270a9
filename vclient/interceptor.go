package vclient

import (
	"context"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/nextpkg/vrpc/codec"
	"github.com/nextpkg/vrpc/vrpcpb"
)

// Scheme is the gRPC target scheme of vRPC: a conn dialled to
// "vrpc:///demo" carries its calls to target "demo".
const Scheme = "vrpc"

// TargetHeader is the request metadata key that names the target of one
// call, overriding every other way of choosing it.
const TargetHeader = "vrpc-target"

// CallOption configures the interceptor (WithTarget) or Client.Call
// (WithJSON, WithProtobuf, WithJSONOptions).
type CallOption interface{ applyCall(*callOptions) }

type encoding int

const (
	encodingAuto encoding = iota
	encodingProto
	encodingJSON
)

type callOptions struct {
	target   string
	encoding encoding
	json     *vrpcpb.JSONOptions
}

type callOptionFunc func(*callOptions)

func (f callOptionFunc) applyCall(o *callOptions) { f(o) }

// WithTarget makes every call through the interceptor go to target.
func WithTarget(target string) CallOption {
	return callOptionFunc(func(o *callOptions) { o.target = target })
}

// WithJSON makes Call send its payload as JSON, whatever it looks like.
func WithJSON() CallOption {
	return callOptionFunc(func(o *callOptions) { o.encoding = encodingJSON })
}

// WithProtobuf makes Call send its payload as protobuf, even when it
// happens to look like JSON.
func WithProtobuf() CallOption {
	return callOptionFunc(func(o *callOptions) { o.encoding = encodingProto })
}

// WithJSONOptions sets how the server writes a JSON reply: with the .proto
// field names instead of lowerCamelCase, and with fields that hold their
// default value.
func WithJSONOptions(useProtoNames, emitDefaults bool) CallOption {
	return callOptionFunc(func(o *callOptions) {
		o.json = &vrpcpb.JSONOptions{UseProtoNames: useProtoNames, EmitDefaults: emitDefaults}
	})
}

// UnaryClientInterceptor returns a grpc.UnaryClientInterceptor that carries
// each unary call over the bus instead of sending it on the conn; the conn
// is never used for it. The target of a call is, in this order: the
// "vrpc-target" request header; WithTarget; the conn's own target when it
// was dialled as "vrpc:///<target>"; the services table of the client
// config (full service name, then the longest package prefix). A call
// none of them names fails with UNIMPLEMENTED.
func (c *Client) UnaryClientInterceptor(opts ...CallOption) grpc.UnaryClientInterceptor {
	var o callOptions
	for _, opt := range opts {
		opt.applyCall(&o)
	}
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, _ grpc.UnaryInvoker, callOpts ...grpc.CallOption) error {
		connTarget := ""
		if cc != nil {
			connTarget = cc.Target()
		}
		target, err := c.route(ctx, method, o.target, connTarget)
		if err != nil {
			return err
		}
		return c.invokeMessage(ctx, target, method, req, reply, callOpts)
	}
}

// route picks the target of a call as UnaryClientInterceptor documents.
func (c *Client) route(ctx context.Context, method, fixed, connTarget string) (string, error) {
	if md, ok := metadata.FromOutgoingContext(ctx); ok {
		if v := md.Get(TargetHeader); len(v) > 0 && v[0] != "" {
			return v[0], nil
		}
	}
	if fixed != "" {
		return fixed, nil
	}
	if t, ok := strings.CutPrefix(connTarget, Scheme+":///"); ok && t != "" {
		return t, nil
	}
	if t, ok := c.serviceTarget(method); ok {
		return t, nil
	}
	return "", status.Errorf(codes.Unimplemented,
		"vrpc: no target for %s: dial vrpc:///<target>, use vrpc.WithTarget, set the %s header, or map the service in the client config's services", method, TargetHeader)
}

// serviceTarget looks the method's service up in the services table: the
// full service name first, then the longest key ending in "." that
// prefixes it.
func (c *Client) serviceTarget(method string) (string, bool) {
	if len(c.cfg.Services) == 0 {
		return "", false
	}
	svc := strings.TrimPrefix(method, "/")
	if i := strings.LastIndexByte(svc, '/'); i >= 0 {
		svc = svc[:i]
	}
	if t, ok := c.cfg.Services[svc]; ok {
		return t, true
	}
	best, bestLen := "", 0
	for prefix, t := range c.cfg.Services {
		if strings.HasSuffix(prefix, ".") && strings.HasPrefix(svc, prefix) && len(prefix) > bestLen {
			best, bestLen = t, len(prefix)
		}
	}
	return best, bestLen > 0
}

// invokeMessage carries one call whose request and reply are protobuf
// messages, honouring the grpc.Header and grpc.Trailer call options.
func (c *Client) invokeMessage(ctx context.Context, target, method string, req, reply any, callOpts []grpc.CallOption) error {
	in, ok := req.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "vrpc: request %T is not a protobuf message", req)
	}
	out, ok := reply.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "vrpc: reply %T is not a protobuf message", reply)
	}
	payload, err := proto.Marshal(in)
	if err != nil {
		return status.Errorf(codes.Internal, "vrpc: marshal request: %v", err)
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	resp, err := c.invoke(ctx, target, method, payload, md, &vrpcpb.Request{})
	if err != nil {
		return err
	}
	// The header and trailer become maps only for the caller that asks.
	for _, o := range callOpts {
		switch o := o.(type) {
		case grpc.HeaderCallOption:
			*o.HeaderAddr = codec.MetadataFromWire(resp.Header)
		case grpc.TrailerCallOption:
			*o.TrailerAddr = codec.MetadataFromWire(resp.Trailer)
		}
	}
	if err := replyError(resp); err != nil {
		return err
	}
	if err := proto.Unmarshal(resp.Payload, out); err != nil {
		return status.Errorf(codes.Internal, "vrpc: unmarshal reply of %s into %T: %v", method, reply, err)
	}
	return nil
}
