package vclient

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"

	"github.com/nextpkg/vrpc/codec"
)

// loopback is a gRPC endpoint on 127.0.0.1 that accepts any unary method
// and carries it over the bus. Conns dialled through ResolverBuilder reach
// it, so they are ready at once whatever the real target's reachability,
// and a call that no interceptor took still goes over the bus.
type loopback struct {
	lis  net.Listener
	srv  *grpc.Server
	done chan struct{}
}

func (c *Client) startLoopback() (*loopback, error) {
	c.loopbackOnce.Do(func() {
		c.mu.Lock()
		closed := c.closed
		c.mu.Unlock()
		if closed {
			c.loopbackErr = ErrClosed
			return
		}
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			c.loopbackErr = fmt.Errorf("vclient: loopback endpoint: %w", err)
			return
		}
		srv := grpc.NewServer(
			grpc.UnknownServiceHandler(c.Handler(c.routeLoopback)),
			grpc.ForceServerCodecV2(codec.Raw{}),
			grpc.MaxRecvMsgSize(c.cfg.MaxMessageBytes+1024),
			grpc.MaxSendMsgSize(c.cfg.MaxMessageBytes+1024),
		)
		lb := &loopback{lis: lis, srv: srv, done: make(chan struct{})}
		go func() {
			defer close(lb.done)
			_ = srv.Serve(lis)
		}()
		c.mu.Lock()
		c.loopback = lb
		c.mu.Unlock()
	})
	if c.loopbackErr != nil {
		return nil, c.loopbackErr
	}
	return c.loopback, nil
}

func (lb *loopback) stop() {
	lb.srv.Stop()
	<-lb.done
}

// routeLoopback picks the target of a call to the loopback endpoint: the
// vrpc-target header, else the :authority the conn was dialled with
// ("vrpc:///demo" sends "demo"), else the services table.
func (c *Client) routeLoopback(_ context.Context, method string, md metadata.MD) (string, error) {
	if v := md.Get(TargetHeader); len(v) > 0 && v[0] != "" {
		return v[0], nil
	}
	if v := md.Get(":authority"); len(v) > 0 && rpcbusName(v[0]) {
		return v[0], nil
	}
	if t, ok := c.serviceTarget(method); ok {
		return t, nil
	}
	return "", status.Errorf(codes.Unimplemented, "vrpc: no target for %s: dial vrpc:///<target> or set the %s header", method, TargetHeader)
}

// Router picks the target of a call that arrived at a gRPC endpoint, from
// its full method name ("/pkg.Service/Method") and request metadata, or
// refuses the call with a gRPC status error.
type Router func(ctx context.Context, method string, md metadata.MD) (target string, err error)

// Handler returns a grpc.StreamHandler that carries each call it gets over
// the bus as a unary call to the target route picks: the request bytes,
// the caller's metadata and deadline go out, and the target's reply,
// header, trailer and status come back to the caller unchanged. It is for
// grpc.UnknownServiceHandler on a server whose forced codec
// (grpc.ForceServerCodecV2) handles a *codec.Frame as codec.Raw does, so
// that payloads pass as bytes, never decoded. The loopback endpoint and the
// gateway (package vgateway) are such servers.
func (c *Client) Handler(route Router) grpc.StreamHandler {
	return func(_ any, stream grpc.ServerStream) error {
		method, _ := grpc.MethodFromServerStream(stream)
		ctx := stream.Context()
		md, _ := metadata.FromIncomingContext(ctx)
		target, err := route(ctx, method, md)
		if err != nil {
			return err
		}
		var in codec.Frame
		if err := stream.RecvMsg(&in); err != nil {
			return err
		}
		if err := c.halfClosed(ctx, stream, method); err != nil {
			return err
		}
		resp, err := c.Invoke(ctx, target, method, in, md)
		if resp != nil {
			// Set, not sent: gRPC sends it with the reply (or before the
			// status of a failed call) without a write of its own.
			if len(resp.Header) > 0 {
				_ = stream.SetHeader(resp.Header)
			}
			stream.SetTrailer(resp.Trailer)
		}
		if err != nil {
			return err
		}
		out := codec.Frame(resp.Payload)
		return stream.SendMsg(&out)
	}
}

// halfClosed waits for the caller to end its side of the call after its
// first message, as a unary caller does at once. vRPC carries one request
// message: a caller that sends a second one is calling a client or
// bidirectional streaming method, and answering the first message alone
// would be an answer to part of its input, so the call ends with
// UNIMPLEMENTED before the target sees anything. A caller that keeps its
// side open (a bidirectional stream waiting for an answer) waits until its
// deadline, or timeout.request when it has none.
func (c *Client) halfClosed(ctx context.Context, stream grpc.ServerStream, method string) error {
	var extra codec.Frame
	recv := func() error { return stream.RecvMsg(&extra) }
	var err error
	if _, ok := ctx.Deadline(); ok {
		err = recv() // ends with the call's context
	} else {
		// RecvMsg takes no context: bound it from here. Returning ends
		// the call, and with it the RecvMsg left waiting.
		done := make(chan error, 1)
		go func() { done <- recv() }()
		t := time.NewTimer(c.cfg.Timeout.Request)
		select {
		case err = <-done:
			t.Stop()
		case <-t.C:
			return status.Errorf(codes.DeadlineExceeded,
				"vrpc: %s: the caller did not end its side of the call within timeout.request %v after its first message; vRPC carries unary calls only (streaming is not supported yet)",
				method, c.cfg.Timeout.Request)
		}
	}
	switch {
	case err == io.EOF:
		return nil
	case err == nil:
		return status.Errorf(codes.Unimplemented,
			"vrpc: %s: the caller sent more than one request message; vRPC carries unary calls only (streaming is not supported yet)", method)
	}
	return err
}

// ServiceTarget looks a service up in the services table of the client
// config: the full name first, then the longest key ending in "." that
// prefixes it. name is a service ("demo.Demo") or a full method
// ("/demo.Demo/Ping").
func (c *Client) ServiceTarget(name string) (string, bool) { return c.serviceTarget(name) }

func rpcbusName(authority string) bool {
	return authority != "" && !strings.ContainsAny(authority, ":/")
}

// ResolverBuilder returns a gRPC resolver for the "vrpc" scheme: a conn
// dialled to "vrpc:///demo" with grpc.WithResolvers(client.ResolverBuilder())
// connects to the client's loopback endpoint, and its calls go to target
// "demo" over the bus, with or without the interceptor.
func (c *Client) ResolverBuilder() resolver.Builder { return builder{c} }

type builder struct{ c *Client }

func (b builder) Scheme() string { return Scheme }

func (b builder) Build(t resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	lb, err := b.c.startLoopback()
	if err != nil {
		return nil, err
	}
	err = cc.UpdateState(resolver.State{Addresses: []resolver.Address{{Addr: lb.lis.Addr().String()}}})
	if err != nil {
		return nil, err
	}
	return nopResolver{}, nil
}

type nopResolver struct{}

func (nopResolver) ResolveNow(resolver.ResolveNowOptions) {}
func (nopResolver) Close()                                {}
