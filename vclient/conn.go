package vclient

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Conn is a grpc.ClientConnInterface that carries every unary call over the
// bus to one target, so generated stubs work with no grpc.ClientConn:
//
//	demo.NewDemoClient(vclient.NewConn(client, "demo")).Ping(ctx, req)
type Conn struct {
	c      *Client
	target string
}

var _ grpc.ClientConnInterface = (*Conn)(nil)

// NewConn returns a Conn whose calls go to target; the "vrpc-target"
// request header overrides it per call.
func NewConn(c *Client, target string) *Conn {
	return &Conn{c: c, target: target}
}

// Invoke carries a unary call over the bus.
func (cn *Conn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	target, err := cn.c.route(ctx, method, cn.target, "")
	if err != nil {
		return err
	}
	return cn.c.invokeMessage(ctx, target, method, args, reply, opts)
}

// NewStream fails: vRPC carries unary calls only.
func (cn *Conn) NewStream(_ context.Context, desc *grpc.StreamDesc, method string, _ ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, status.Errorf(codes.Unimplemented, "vrpc: %s is a streaming method; vRPC carries unary calls only (streaming is not supported yet)", method)
}
