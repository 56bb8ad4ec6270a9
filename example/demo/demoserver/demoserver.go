// Package demoserver is the demo gRPC target: an ordinary grpc-go service
// that knows nothing of vRPC. `vrpc demo` and the examples call it over
// the bus.
package demoserver

import (
	"context"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/nextpkg/vrpc/example/demo"
)

// Server implements demo.DemoServer.
type Server struct {
	demo.UnimplementedDemoServer
	// Name is reported in every reply's served_by and x-served-by header.
	Name string
}

// Ping echoes the request's message. An empty message is refused with
// INVALID_ARGUMENT, which shows a target's status reaching the caller.
func (s *Server) Ping(ctx context.Context, req *demo.Request) (*demo.Response, error) {
	if req.GetMessage() == "" {
		return nil, status.Error(codes.InvalidArgument, "message must not be empty")
	}
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-served-by", s.Name))
	return &demo.Response{Message: req.GetMessage(), ServedBy: s.Name}, nil
}

// Serve runs a Server named name on lis, with server reflection (which lets
// vRPC resolve short method names such as "Ping"), until the returned
// server is stopped.
func Serve(lis net.Listener, name string) *grpc.Server {
	srv := grpc.NewServer()
	demo.RegisterDemoServer(srv, &Server{Name: name})
	reflection.Register(srv)
	go func() { _ = srv.Serve(lis) }()
	return srv
}
