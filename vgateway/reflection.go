package vgateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	rpbalpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/nextpkg/vrpc/vclient"
)

// reflectTimeout bounds one reflection exchange with a target over the
// bus, so that a target whose server is down does not hold up a listing
// for the whole client timeout.
const reflectTimeout = 10 * time.Second

// The gateway's own services, which it describes itself.
var ownServices = []string{
	healthpb.Health_ServiceDesc.ServiceName,
	rpb.ServerReflection_ServiceDesc.ServiceName,
	rpbalpha.ServerReflection_ServiceDesc.ServiceName,
}

// ownFiles are the files of the gateway's own services, by path.
var ownFiles = map[string]protoreflect.FileDescriptor{
	healthpb.File_grpc_health_v1_health_proto.Path():              healthpb.File_grpc_health_v1_health_proto,
	rpb.File_grpc_reflection_v1_reflection_proto.Path():           rpb.File_grpc_reflection_v1_reflection_proto,
	rpbalpha.File_grpc_reflection_v1alpha_reflection_proto.Path(): rpbalpha.File_grpc_reflection_v1alpha_reflection_proto,
}

// reflector answers server reflection for the routed targets: each
// request is exchanged with a target's own reflection service over the
// bus (vclient.Client.Reflect), chosen as a call to the symbol would be
// routed. The vrpc-target header of the stream pins every request to one
// target.
type reflector struct {
	rpb.UnimplementedServerReflectionServer
	g *Gateway
}

// ServerReflectionInfo serves one reflection stream.
func (r *reflector) ServerReflectionInfo(stream rpb.ServerReflection_ServerReflectionInfoServer) error {
	return r.serve(stream.Context(), stream.Recv, stream.Send)
}

type received struct {
	req *rpb.ServerReflectionRequest
	err error
}

func (r *reflector) serve(ctx context.Context, recv func() (*rpb.ServerReflectionRequest, error), send func(*rpb.ServerReflectionResponse) error) error {
	pinned := ""
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(vclient.TargetHeader); len(v) > 0 {
			pinned = v[0]
		}
		// The caller's metadata goes with each exchange, as with its calls
		// (the server may want its credentials).
		ctx = metadata.NewOutgoingContext(ctx, md)
	}
	// Recv runs apart so that Stop can end a stream its client keeps
	// open; the goroutine ends with the stream.
	ch := make(chan received, 1)
	for {
		go func() {
			req, err := recv()
			ch <- received{req, err}
		}()
		var in received
		select {
		case in = <-ch:
		case <-r.g.quit:
			return status.Error(codes.Unavailable, "vrpc gateway: stopping")
		}
		if errors.Is(in.err, io.EOF) {
			return nil // the client closed the stream
		}
		if in.err != nil {
			return in.err
		}
		if err := send(r.answer(ctx, pinned, in.req)); err != nil {
			return err
		}
	}
}

// answer handles one request.
func (r *reflector) answer(ctx context.Context, pinned string, req *rpb.ServerReflectionRequest) *rpb.ServerReflectionResponse {
	var resp *rpb.ServerReflectionResponse
	switch m := req.MessageRequest.(type) {
	case *rpb.ServerReflectionRequest_ListServices:
		resp = r.listServices(ctx, pinned)
	case *rpb.ServerReflectionRequest_FileByFilename:
		if fd, ok := ownFiles[m.FileByFilename]; ok && pinned == "" {
			resp = fileResponse(fd)
		} else {
			resp = r.ask(ctx, r.targets(pinned, ""), req, "file "+m.FileByFilename)
		}
	case *rpb.ServerReflectionRequest_FileContainingSymbol:
		if fd, ok := ownSymbol(m.FileContainingSymbol); ok && pinned == "" {
			resp = fileResponse(fd)
		} else {
			resp = r.ask(ctx, r.targets(pinned, m.FileContainingSymbol), req, "symbol "+m.FileContainingSymbol)
		}
	case *rpb.ServerReflectionRequest_FileContainingExtension:
		typ := m.FileContainingExtension.GetContainingType()
		resp = r.ask(ctx, r.targets(pinned, typ), req, fmt.Sprintf("extension %d of %s", m.FileContainingExtension.GetExtensionNumber(), typ))
	case *rpb.ServerReflectionRequest_AllExtensionNumbersOfType:
		resp = r.ask(ctx, r.targets(pinned, m.AllExtensionNumbersOfType), req, "type "+m.AllExtensionNumbersOfType)
	default:
		resp = errorResponse(codes.InvalidArgument, "vrpc gateway: unknown reflection request %T", req.MessageRequest)
	}
	resp.ValidHost = req.Host
	resp.OriginalRequest = req
	return resp
}

// listServices lists the services the gateway routes: those of every
// target in the services table (or the pinned target) that route to that
// target, and the gateway's own. Targets that cannot be asked are left
// out (and logged); if none can, the answer is their errors.
func (r *reflector) listServices(ctx context.Context, pinned string) *rpb.ServerReflectionResponse {
	targets := r.targets(pinned, "")
	lists := make([][]string, len(targets))
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			lists[i], errs[i] = r.targetServices(ctx, t)
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	var failed []string
	code := codes.OK
	for i, t := range targets {
		if errs[i] != nil {
			st := status.Convert(errs[i])
			failed = append(failed, fmt.Sprintf("%s: %s", t, st.Message()))
			if code == codes.OK {
				code = st.Code()
			}
			continue
		}
		for _, svc := range lists[i] {
			if strings.HasPrefix(svc, "grpc.reflection.") || svc == healthpb.Health_ServiceDesc.ServiceName {
				continue // the gateway's own
			}
			if pinned == "" {
				if routed, ok := r.g.c.ServiceTarget(svc); !ok || routed != t {
					continue // a call to it would not reach t
				}
			}
			seen[svc] = true
		}
	}
	if len(failed) > 0 {
		if len(failed) == len(targets) {
			return errorResponse(code, "vrpc gateway: cannot list the services of %s", strings.Join(failed, "; "))
		}
		r.g.c.Logger().Error("vrpc gateway: listing services without " + strings.Join(failed, "; "))
	}
	for _, svc := range ownServices {
		seen[svc] = true
	}
	names := make([]string, 0, len(seen))
	for svc := range seen {
		names = append(names, svc)
	}
	sort.Strings(names)
	out := &rpb.ListServiceResponse{}
	for _, svc := range names {
		out.Service = append(out.Service, &rpb.ServiceResponse{Name: svc})
	}
	return &rpb.ServerReflectionResponse{MessageResponse: &rpb.ServerReflectionResponse_ListServicesResponse{ListServicesResponse: out}}
}

func (r *reflector) targetServices(ctx context.Context, target string) ([]string, error) {
	resp, err := r.exchange(ctx, target, &rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_ListServices{}})
	if err != nil {
		return nil, err
	}
	if e := resp.GetErrorResponse(); e != nil {
		return nil, status.Error(codes.Code(e.ErrorCode), e.ErrorMessage)
	}
	var out []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		out = append(out, s.GetName())
	}
	return out, nil
}

// ask tries targets in order until one answers req without an error, and
// otherwise reports what each said.
func (r *reflector) ask(ctx context.Context, targets []string, req *rpb.ServerReflectionRequest, what string) *rpb.ServerReflectionResponse {
	if len(targets) == 0 {
		return errorResponse(codes.NotFound, "vrpc gateway: %s not found: the gateway routes no target (map services in the client config or set the %s header)", what, vclient.TargetHeader)
	}
	code := codes.NotFound
	var said []string
	for _, t := range targets {
		resp, err := r.exchange(ctx, t, req)
		if err == nil && resp.GetErrorResponse() == nil {
			return resp
		}
		st := status.Convert(err)
		if err == nil {
			e := resp.GetErrorResponse()
			st = status.New(codes.Code(e.ErrorCode), e.ErrorMessage)
		}
		if st.Code() != codes.NotFound && code == codes.NotFound {
			code = st.Code()
		}
		said = append(said, fmt.Sprintf("%s: %s", t, st.Message()))
	}
	return errorResponse(code, "vrpc gateway: %s not found (%s)", what, strings.Join(said, "; "))
}

func (r *reflector) exchange(ctx context.Context, target string, req *rpb.ServerReflectionRequest) (*rpb.ServerReflectionResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, reflectTimeout)
	defer cancel()
	resp, err := r.g.c.Reflect(ctx, target, req)
	if st := status.Convert(err); st.Code() == codes.Unimplemented && strings.Contains(st.Message(), "ServerReflection") {
		return nil, status.Errorf(codes.Unimplemented, "target %s has no server reflection (register it with reflection.Register in grpc-go): %s", target, st.Message())
	}
	return resp, err
}

// targets lists the targets to ask, in order: the pinned one alone; else
// those a call to symbol would be routed to (the symbol and each enclosing
// name in the services table, then its package prefix), then the other
// targets of the services table.
func (r *reflector) targets(pinned, symbol string) []string {
	if pinned != "" {
		return []string{pinned}
	}
	services := r.g.c.Config().Services
	var out []string
	add := func(t string) {
		for _, have := range out {
			if have == t {
				return
			}
		}
		out = append(out, t)
	}
	if symbol != "" {
		for name := symbol; name != ""; {
			if t, ok := services[name]; ok && !strings.HasSuffix(name, ".") {
				add(t)
			}
			i := strings.LastIndexByte(name, '.')
			if i < 0 {
				break
			}
			name = name[:i]
		}
		if t, ok := r.g.c.ServiceTarget(symbol); ok {
			add(t)
		}
	}
	rest := make([]string, 0, len(services))
	for _, t := range services {
		rest = append(rest, t)
	}
	sort.Strings(rest)
	for _, t := range rest {
		add(t)
	}
	return out
}

// ownSymbol finds a symbol of the gateway's own services.
func ownSymbol(symbol string) (protoreflect.FileDescriptor, bool) {
	if !strings.HasPrefix(symbol, "grpc.health.v1.") && !strings.HasPrefix(symbol, "grpc.reflection.") {
		return nil, false
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(symbol))
	if err != nil {
		return nil, false
	}
	fd := d.ParentFile()
	_, own := ownFiles[fd.Path()]
	return fd, own
}

// fileResponse is fd and every file it imports, as reflection sends them.
func fileResponse(fd protoreflect.FileDescriptor) *rpb.ServerReflectionResponse {
	var files [][]byte
	seen := map[string]bool{}
	var walk func(fd protoreflect.FileDescriptor)
	walk = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		b, err := proto.Marshal(protodesc.ToFileDescriptorProto(fd))
		if err == nil {
			files = append(files, b)
		}
		for i := range fd.Imports().Len() {
			walk(fd.Imports().Get(i).FileDescriptor)
		}
	}
	walk(fd)
	return &rpb.ServerReflectionResponse{MessageResponse: &rpb.ServerReflectionResponse_FileDescriptorResponse{
		FileDescriptorResponse: &rpb.FileDescriptorResponse{FileDescriptorProto: files},
	}}
}

func errorResponse(code codes.Code, format string, args ...any) *rpb.ServerReflectionResponse {
	return &rpb.ServerReflectionResponse{MessageResponse: &rpb.ServerReflectionResponse_ErrorResponse{
		ErrorResponse: &rpb.ErrorResponse{ErrorCode: int32(code), ErrorMessage: fmt.Sprintf(format, args...)},
	}}
}

// reflectorV1alpha serves grpc.reflection.v1alpha, whose messages are
// those of v1 under another package name (same fields, same numbers), for
// clients that still ask it.
type reflectorV1alpha struct{ r *reflector }

func (a reflectorV1alpha) ServerReflectionInfo(stream rpbalpha.ServerReflection_ServerReflectionInfoServer) error {
	recv := func() (*rpb.ServerReflectionRequest, error) {
		in, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		out := new(rpb.ServerReflectionRequest)
		if err := convert(in, out); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "vrpc gateway: reflection request: %v", err)
		}
		return out, nil
	}
	send := func(resp *rpb.ServerReflectionResponse) error {
		out := new(rpbalpha.ServerReflectionResponse)
		if err := convert(resp, out); err != nil {
			return status.Errorf(codes.Internal, "vrpc gateway: reflection response: %v", err)
		}
		return stream.Send(out)
	}
	return a.r.serve(stream.Context(), recv, send)
}

func convert(from, to proto.Message) error {
	b, err := proto.Marshal(from)
	if err != nil {
		return err
	}
	return proto.Unmarshal(b, to)
}
