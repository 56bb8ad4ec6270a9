// Package schema finds the protobuf descriptors of a gRPC target's methods
// and transcodes their messages between JSON and the protobuf wire format.
//
// Descriptors come from the target's gRPC server reflection
// (grpc.reflection.v1), through an Exchange: a server asks its target
// directly, a client or gateway asks through the bus. They are cached;
// Reset drops the cache (callers do when a method they expected is
// missing, as after a target's upgrade). A Source can also be built from a
// compiled descriptor set (protoc --descriptor_set_out --include_imports).
package schema

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"

	"google.golang.org/grpc/codes"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// Exchange sends one server reflection request and returns its response.
type Exchange func(ctx context.Context, req *rpb.ServerReflectionRequest) (*rpb.ServerReflectionResponse, error)

// Source is the schema of one target. It is safe for concurrent use.
type Source struct {
	ex Exchange // nil for a descriptor set

	mu       sync.Mutex
	raw      map[string]*descriptorpb.FileDescriptorProto // by file name
	services []string                                     // nil until listed
	files    *protoregistry.Files                         // built from raw
	types    *dynamicpb.Types
}

// NewSource returns a Source that asks ex for descriptors.
func NewSource(ex Exchange) *Source {
	return &Source{ex: ex, raw: map[string]*descriptorpb.FileDescriptorProto{}}
}

// FromDescriptorSet reads a serialized FileDescriptorSet (with its
// imports) from path.
func FromDescriptorSet(path string) (*Source, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("descriptor set %s: %w", path, err)
	}
	s := &Source{raw: map[string]*descriptorpb.FileDescriptorProto{}}
	for _, fd := range set.File {
		s.raw[fd.GetName()] = fd
	}
	if err := s.build(); err != nil {
		return nil, fmt.Errorf("descriptor set %s: %w", path, err)
	}
	for _, fd := range set.File {
		for _, sd := range fd.GetService() {
			s.services = append(s.services, qualify(fd.GetPackage(), sd.GetName()))
		}
	}
	sort.Strings(s.services)
	return s, nil
}

// Reset drops what the source has learned from reflection, so that the
// next lookup asks again.
func (s *Source) Reset() {
	if s.ex == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.raw = map[string]*descriptorpb.FileDescriptorProto{}
	s.services, s.files, s.types = nil, nil, nil
}

// Services lists the target's services, without the reflection service.
func (s *Source) Services(ctx context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.services == nil {
		resp, err := s.ask(ctx, &rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_ListServices{}})
		if err != nil {
			return nil, err
		}
		list := []string{}
		for _, svc := range resp.GetListServicesResponse().GetService() {
			if !strings.HasPrefix(svc.Name, "grpc.reflection.") {
				list = append(list, svc.Name)
			}
		}
		sort.Strings(list)
		s.services = list
	}
	return append([]string(nil), s.services...), nil
}

// Service returns the descriptor of a service by full name.
func (s *Source) Service(ctx context.Context, name string) (protoreflect.ServiceDescriptor, error) {
	d, err := s.symbol(ctx, name)
	if err != nil {
		return nil, err
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, status.Errorf(codes.NotFound, "%s is not a service", name)
	}
	return sd, nil
}

// Methods lists every method of every service.
func (s *Source) Methods(ctx context.Context) ([]protoreflect.MethodDescriptor, error) {
	svcs, err := s.Services(ctx)
	if err != nil {
		return nil, err
	}
	var out []protoreflect.MethodDescriptor
	for _, name := range svcs {
		sd, err := s.Service(ctx, name)
		if err != nil {
			return nil, err
		}
		for i := range sd.Methods().Len() {
			out = append(out, sd.Methods().Get(i))
		}
	}
	return out, nil
}

// Method returns the descriptor of a full method name, "/pkg.Svc/Method"
// or "pkg.Svc/Method". A missing service or method is UNIMPLEMENTED.
func (s *Source) Method(ctx context.Context, full string) (protoreflect.MethodDescriptor, error) {
	svc, m, ok := strings.Cut(strings.TrimPrefix(full, "/"), "/")
	if !ok || svc == "" || m == "" {
		return nil, status.Errorf(codes.InvalidArgument, "method %q: want /package.Service/Method", full)
	}
	sd, err := s.Service(ctx, svc)
	if err != nil {
		if status.Code(err) == codes.NotFound {
			return nil, status.Errorf(codes.Unimplemented, "unknown service %s", svc)
		}
		return nil, err
	}
	md := sd.Methods().ByName(protoreflect.Name(m))
	if md == nil {
		return nil, status.Errorf(codes.Unimplemented, "unknown method %s for service %s", m, svc)
	}
	return md, nil
}

// Resolve finds a method given by full name or by its short name ("Ping").
// An unknown short name is UNIMPLEMENTED listing the methods the target
// has; an ambiguous one is INVALID_ARGUMENT listing the candidates.
func (s *Source) Resolve(ctx context.Context, method string) (protoreflect.MethodDescriptor, error) {
	if strings.Contains(method, "/") {
		return s.Method(ctx, method)
	}
	all, err := s.Methods(ctx)
	if err != nil {
		return nil, err
	}
	var found []protoreflect.MethodDescriptor
	names := make([]string, 0, len(all))
	for _, md := range all {
		names = append(names, FullMethod(md))
		if string(md.Name()) == method {
			found = append(found, md)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return nil, status.Errorf(codes.Unimplemented, "no method %q (has: %s)", method, strings.Join(names, ", "))
	default:
		c := make([]string, len(found))
		for i, md := range found {
			c[i] = FullMethod(md)
		}
		return nil, status.Errorf(codes.InvalidArgument, "method %q is ambiguous: %s; use the full name", method, strings.Join(c, ", "))
	}
}

// FullMethod is md's gRPC method name, "/pkg.Svc/Method".
func FullMethod(md protoreflect.MethodDescriptor) string {
	return "/" + string(md.Parent().FullName()) + "/" + string(md.Name())
}

// Streaming reports whether md streams in either direction.
func Streaming(md protoreflect.MethodDescriptor) bool {
	return md.IsStreamingClient() || md.IsStreamingServer()
}

// symbol finds a service or message by full name, asking the target for
// the file that defines it when it is not known yet.
func (s *Source) symbol(ctx context.Context, name string) (protoreflect.Descriptor, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.files != nil {
		if d, err := s.files.FindDescriptorByName(protoreflect.FullName(name)); err == nil {
			return d, nil
		}
	}
	if s.ex == nil {
		return nil, status.Errorf(codes.NotFound, "%s is not in the descriptor set", name)
	}
	resp, err := s.ask(ctx, &rpb.ServerReflectionRequest{
		MessageRequest: &rpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: name},
	})
	if err != nil {
		return nil, err
	}
	if err := s.add(ctx, resp.GetFileDescriptorResponse().GetFileDescriptorProto()); err != nil {
		return nil, err
	}
	d, err := s.files.FindDescriptorByName(protoreflect.FullName(name))
	if err != nil {
		return nil, status.Errorf(codes.NotFound, "%s: %v", name, err)
	}
	return d, nil
}

// add decodes files, fetches the dependencies still missing and rebuilds
// the registry. Called with mu held.
func (s *Source) add(ctx context.Context, encoded [][]byte) error {
	queue := encoded
	for len(queue) > 0 {
		var next [][]byte
		for _, b := range queue {
			fd := new(descriptorpb.FileDescriptorProto)
			if err := proto.Unmarshal(b, fd); err != nil {
				return status.Errorf(codes.Internal, "reflection sent a bad file descriptor: %v", err)
			}
			s.raw[fd.GetName()] = fd
		}
		for _, b := range queue {
			fd := new(descriptorpb.FileDescriptorProto)
			_ = proto.Unmarshal(b, fd)
			for _, dep := range fd.GetDependency() {
				if _, ok := s.raw[dep]; ok {
					continue
				}
				resp, err := s.ask(ctx, &rpb.ServerReflectionRequest{
					MessageRequest: &rpb.ServerReflectionRequest_FileByFilename{FileByFilename: dep},
				})
				if err != nil {
					return err
				}
				next = append(next, resp.GetFileDescriptorResponse().GetFileDescriptorProto()...)
				s.raw[dep] = nil // asked; filled when next is decoded
			}
		}
		queue = next
	}
	return s.build()
}

// build makes the registry from raw. Called with mu held.
func (s *Source) build() error {
	set := &descriptorpb.FileDescriptorSet{}
	for _, fd := range s.raw {
		if fd != nil {
			set.File = append(set.File, fd)
		}
	}
	files, err := protodesc.NewFiles(set)
	if err != nil {
		return status.Errorf(codes.Internal, "cannot use the target's descriptors: %v", err)
	}
	s.files, s.types = files, dynamicpb.NewTypes(files)
	return nil
}

func (s *Source) ask(ctx context.Context, req *rpb.ServerReflectionRequest) (*rpb.ServerReflectionResponse, error) {
	resp, err := s.ex(ctx, req)
	if err != nil {
		if st := status.Convert(err); st.Code() == codes.Unimplemented && strings.Contains(st.Message(), "grpc.reflection") {
			return nil, status.Errorf(codes.Unimplemented, "the target has no server reflection (grpc.reflection.v1): %v", st.Message())
		}
		return nil, err
	}
	if e := resp.GetErrorResponse(); e != nil {
		code := codes.Code(e.ErrorCode)
		if code == codes.NotFound || code == codes.Unknown {
			code = codes.NotFound
		}
		return nil, status.Error(code, e.ErrorMessage)
	}
	return resp, nil
}

// JSONOptions say how replies are written as JSON.
type JSONOptions struct {
	// UseProtoNames writes field names as in the .proto file (user_id)
	// instead of lowerCamelCase (userId).
	UseProtoNames bool
	// EmitDefaults writes fields that hold their default value.
	EmitDefaults bool
}

// JSONToProto encodes a JSON request for md as protobuf. Field names may
// be the proto names or their JSON names; an Any may hold any message type
// the target knows. Errors are INVALID_ARGUMENT with the parse error.
func (s *Source) JSONToProto(ctx context.Context, md protoreflect.MethodDescriptor, in []byte) ([]byte, error) {
	msg := dynamicpb.NewMessage(md.Input())
	opts := protojson.UnmarshalOptions{Resolver: s.resolver(ctx)}
	if err := opts.Unmarshal(in, msg); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "bad JSON for %s (%s): %v", md.Input().FullName(), FullMethod(md), err)
	}
	return proto.Marshal(msg)
}

// ProtoToJSON decodes md's protobuf reply and writes it as JSON.
func (s *Source) ProtoToJSON(ctx context.Context, md protoreflect.MethodDescriptor, out []byte, o JSONOptions) ([]byte, error) {
	msg := dynamicpb.NewMessage(md.Output())
	res := s.resolver(ctx)
	if err := (proto.UnmarshalOptions{Resolver: res}).Unmarshal(out, msg); err != nil {
		return nil, status.Errorf(codes.Internal, "the target's reply is not a valid %s: %v", md.Output().FullName(), err)
	}
	b, err := protojson.MarshalOptions{Resolver: res, UseProtoNames: o.UseProtoNames, EmitUnpopulated: o.EmitDefaults}.Marshal(msg)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "write %s as JSON: %v", md.Output().FullName(), err)
	}
	// protojson varies its whitespace on purpose; callers get stable,
	// compact JSON.
	var compact bytes.Buffer
	if err := json.Compact(&compact, b); err != nil {
		return b, nil
	}
	return compact.Bytes(), nil
}

// resolver finds message types for Any fields: among the files loaded,
// else by asking the target for the symbol. Only the target's own types
// count, never those linked into this process.
func (s *Source) resolver(ctx context.Context) *typeResolver {
	return &typeResolver{s: s, ctx: ctx}
}

type typeResolver struct {
	s   *Source
	ctx context.Context
}

func (r *typeResolver) types() *dynamicpb.Types {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	if r.s.types == nil {
		return dynamicpb.NewTypes(new(protoregistry.Files))
	}
	return r.s.types
}

func (r *typeResolver) FindMessageByName(name protoreflect.FullName) (protoreflect.MessageType, error) {
	if mt, err := r.types().FindMessageByName(name); err == nil {
		return mt, nil
	}
	if _, err := r.s.symbol(r.ctx, string(name)); err != nil {
		return nil, protoregistry.NotFound
	}
	return r.types().FindMessageByName(name)
}

func (r *typeResolver) FindMessageByURL(url string) (protoreflect.MessageType, error) {
	name := url
	if i := strings.LastIndexByte(url, '/'); i >= 0 {
		name = url[i+1:]
	}
	return r.FindMessageByName(protoreflect.FullName(name))
}

func (r *typeResolver) FindExtensionByName(field protoreflect.FullName) (protoreflect.ExtensionType, error) {
	return r.types().FindExtensionByName(field)
}

func (r *typeResolver) FindExtensionByNumber(message protoreflect.FullName, field protoreflect.FieldNumber) (protoreflect.ExtensionType, error) {
	return r.types().FindExtensionByNumber(message, field)
}

func qualify(pkg, name string) string {
	if pkg == "" {
		return name
	}
	return pkg + "." + name
}
