package vgateway_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	rpbalpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/vclient"
	"github.com/nextpkg/vrpc/vserver"
)

// reflectionClient is one reflection stream to the gateway, as grpcurl
// opens it.
type reflectionClient struct {
	t      *testing.T
	stream grpc.BidiStreamingClient[rpb.ServerReflectionRequest, rpb.ServerReflectionResponse]
}

func newReflectionClient(t *testing.T, ctx context.Context, conn *grpc.ClientConn) *reflectionClient {
	t.Helper()
	stream, err := rpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stream.CloseSend() })
	return &reflectionClient{t: t, stream: stream}
}

func (rc *reflectionClient) ask(req *rpb.ServerReflectionRequest) *rpb.ServerReflectionResponse {
	rc.t.Helper()
	if err := rc.stream.Send(req); err != nil {
		rc.t.Fatal(err)
	}
	resp, err := rc.stream.Recv()
	if err != nil {
		rc.t.Fatal(err)
	}
	if !proto.Equal(resp.OriginalRequest, req) {
		rc.t.Errorf("original_request %v, want %v", resp.OriginalRequest, req)
	}
	return resp
}

func (rc *reflectionClient) list() []string {
	rc.t.Helper()
	resp := rc.ask(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_ListServices{}})
	if e := resp.GetErrorResponse(); e != nil {
		rc.t.Fatalf("list_services: %v", e)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.Name)
	}
	return names
}

// symbol asks for the file of symbol and builds it with its imports.
func (rc *reflectionClient) symbol(symbol string) protoreflect.FileDescriptor {
	rc.t.Helper()
	resp := rc.ask(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: symbol}})
	return rc.build(symbol, resp)
}

func (rc *reflectionClient) build(what string, resp *rpb.ServerReflectionResponse) protoreflect.FileDescriptor {
	rc.t.Helper()
	if e := resp.GetErrorResponse(); e != nil {
		rc.t.Fatalf("%s: %v", what, e)
	}
	set := &descriptorpb.FileDescriptorSet{}
	for _, b := range resp.GetFileDescriptorResponse().GetFileDescriptorProto() {
		fd := new(descriptorpb.FileDescriptorProto)
		if err := proto.Unmarshal(b, fd); err != nil {
			rc.t.Fatal(err)
		}
		set.File = append(set.File, fd)
	}
	if len(set.File) == 0 {
		rc.t.Fatalf("%s: no files", what)
	}
	files, err := protodesc.NewFiles(set)
	if err != nil {
		rc.t.Fatalf("%s: %v", what, err)
	}
	fd, err := files.FindFileByPath(set.File[0].GetName())
	if err != nil {
		rc.t.Fatal(err)
	}
	return fd
}

func TestReflection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testContext(t)

	t.Run("list", func(t *testing.T) {
		t.Parallel()
		got := newReflectionClient(t, ctx, e.conn).list()
		// t1's services (both routed to it); t2 serves the same ones, but
		// calls to them go to t1, and plain is not in the table.
		want := []string{
			"demo.Demo",
			"grpc.health.v1.Health",
			"grpc.reflection.v1.ServerReflection",
			"grpc.reflection.v1alpha.ServerReflection",
			"grpc.testing.TestService",
		}
		if !slices.Equal(got, want) {
			t.Fatalf("list_services = %v, want %v", got, want)
		}
	})

	t.Run("describe", func(t *testing.T) {
		t.Parallel()
		rc := newReflectionClient(t, ctx, e.conn)
		for _, symbol := range []string{"demo.Demo", "demo.Demo.Ping", "demo.Request"} {
			fd := rc.symbol(symbol)
			svc := fd.Services().ByName("Demo")
			if svc == nil {
				t.Fatalf("%s: file %s has no service Demo", symbol, fd.Path())
			}
			m := svc.Methods().ByName("Ping")
			if m == nil || m.Input().FullName() != "demo.Request" || m.Output().FullName() != "demo.Response" || m.IsStreamingServer() {
				t.Fatalf("%s: method Ping %v", symbol, m)
			}
		}
		// A file with imports arrives with them.
		fd := rc.symbol("grpc.testing.TestService")
		if m := fd.Services().ByName("TestService").Methods().ByName("FullDuplexCall"); m == nil || !m.IsStreamingClient() {
			t.Fatalf("FullDuplexCall: %v", m)
		}
		// By file name, as clients fetch imports.
		resp := rc.ask(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_FileByFilename{FileByFilename: "demo.proto"}})
		if fd := rc.build("demo.proto", resp); fd.Services().ByName("Demo") == nil {
			t.Fatalf("demo.proto: %v", fd)
		}
		// The gateway's own services.
		if fd := rc.symbol("grpc.health.v1.Health"); fd.Services().ByName("Health") == nil {
			t.Fatalf("health: %v", fd.Path())
		}
	})

	t.Run("not found", func(t *testing.T) {
		t.Parallel()
		rc := newReflectionClient(t, ctx, e.conn)
		for _, req := range []*rpb.ServerReflectionRequest{
			{MessageRequest: &rpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "nowhere.Thing"}},
			{MessageRequest: &rpb.ServerReflectionRequest_FileByFilename{FileByFilename: "nowhere.proto"}},
		} {
			e := rc.ask(req).GetErrorResponse()
			if e == nil || codes.Code(e.ErrorCode) != codes.NotFound {
				t.Errorf("%v: error response %v, want NOT_FOUND", req.MessageRequest, e)
			}
		}
		// The stream goes on after an error.
		if len(rc.list()) == 0 {
			t.Error("no services after an error")
		}
	})

	t.Run("pinned by header", func(t *testing.T) {
		t.Parallel()
		pctx := metadata.AppendToOutgoingContext(ctx, vclient.TargetHeader, "t2")
		rc := newReflectionClient(t, pctx, e.conn)
		if got := rc.list(); !slices.Contains(got, "demo.Demo") || !slices.Contains(got, "grpc.testing.TestService") {
			t.Fatalf("t2's services: %v", got)
		}
		// A target without reflection says so.
		pctx = metadata.AppendToOutgoingContext(ctx, vclient.TargetHeader, "plain")
		rc = newReflectionClient(t, pctx, e.conn)
		resp := rc.ask(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_ListServices{}})
		if e := resp.GetErrorResponse(); e == nil || codes.Code(e.ErrorCode) != codes.Unimplemented {
			t.Fatalf("list at a target without reflection: %v, want an UNIMPLEMENTED error response", resp)
		}
	})

	t.Run("v1alpha", func(t *testing.T) {
		t.Parallel()
		stream, err := rpbalpha.NewServerReflectionClient(e.conn).ServerReflectionInfo(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer stream.CloseSend()
		if err := stream.Send(&rpbalpha.ServerReflectionRequest{MessageRequest: &rpbalpha.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "demo.Demo"}}); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		files := resp.GetFileDescriptorResponse().GetFileDescriptorProto()
		if len(files) == 0 {
			t.Fatalf("v1alpha file_containing_symbol: %v", resp)
		}
		fd := new(descriptorpb.FileDescriptorProto)
		if err := proto.Unmarshal(files[0], fd); err != nil || fd.GetName() != "demo.proto" {
			t.Fatalf("v1alpha: file %q, %v", fd.GetName(), err)
		}
	})
}

// TestCallerCredentials: the caller's metadata goes with everything the
// gateway asks on its behalf, not only its calls: the schema lookup that
// tells streaming methods apart and reflection. Here the server admits
// only requests with the gateway client's token.
func TestCallerCredentials(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(cfg *vrpc.Config) {
		cfg.Plugins = []vrpc.PluginConf{{Name: "auth", Enabled: true, Settings: map[string]any{
			"clients": map[string]any{"gateway": map[string]any{"token": "s3cret", "allow": []any{"*"}}},
		}}}
	})
	ctx := testContext(t)
	withToken := metadata.AppendToOutgoingContext(ctx, vserver.DefaultTokenHeader, "s3cret")

	if _, err := ping(ctx, e.conn, "no token"); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("call without the token: %v, want UNAUTHENTICATED", err)
	}
	if resp, err := ping(withToken, e.conn, "token"); err != nil || resp.ServedBy != "t1" {
		t.Fatalf("call with the token: %v, %v", resp, err)
	}
	out, err := testgrpc.NewTestServiceClient(e.conn).StreamingOutputCall(withToken, &testgrpc.StreamingOutputCallRequest{})
	if err == nil {
		_, err = out.Recv()
	}
	if status.Code(err) != codes.Unimplemented || !strings.Contains(err.Error(), "streaming is not supported yet") {
		t.Fatalf("streaming call with the token: %v, want it refused as streaming", err)
	}
	rc := newReflectionClient(t, withToken, e.conn)
	if got := rc.list(); !slices.Contains(got, "demo.Demo") {
		t.Fatalf("list_services with the token: %v", got)
	}
	if fd := rc.symbol("demo.Demo"); fd.Services().ByName("Demo") == nil {
		t.Fatalf("describe demo.Demo with the token: %v", fd.Path())
	}
	resp := newReflectionClient(t, ctx, e.conn).ask(&rpb.ServerReflectionRequest{
		MessageRequest: &rpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "demo.Demo"},
	})
	if e := resp.GetErrorResponse(); e == nil || codes.Code(e.ErrorCode) != codes.Unauthenticated {
		t.Fatalf("describe without the token: %v, want an UNAUTHENTICATED error response", resp)
	}
}
