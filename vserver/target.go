package vserver

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/nextpkg/vrpc"
)

// target is one configured gRPC service and the conn to it.
type target struct {
	name    string
	conn    *grpc.ClientConn
	timeout time.Duration

	mu       sync.Mutex
	methods  map[string][]string // short name -> full methods
	all      []string
	loadedAt time.Time
}

func newTarget(name string, t vrpc.Target, maxMsg int) (*target, error) {
	timeout, _ := time.ParseDuration(t.Timeout) // checked by Validate
	ts, err := vrpc.ParseTargetSettings(name, t.Settings)
	if err != nil {
		return nil, err
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsg), grpc.MaxCallSendMsgSize(maxMsg)),
	}
	if ts.MaxRetries > 0 {
		opts = append(opts, grpc.WithDefaultServiceConfig(retryPolicy(ts.MaxRetries)))
	}
	conn, err := grpc.NewClient(t.Endpoint, opts...)
	if err != nil {
		return nil, fmt.Errorf("targets.%s.endpoint %q: %w", name, t.Endpoint, err)
	}
	return &target{name: name, conn: conn, timeout: timeout}, nil
}

// retryPolicy retries UNAVAILABLE: gRPC's answer when it could not reach
// the target, so the target has not executed the call. grpc-go bounds the
// retries by the call's deadline.
func retryPolicy(maxRetries int) string {
	return fmt.Sprintf(`{"methodConfig":[{"name":[{}],"retryPolicy":{
		"maxAttempts":%d,"initialBackoff":"0.05s","maxBackoff":"1s","backoffMultiplier":2,
		"retryableStatusCodes":["UNAVAILABLE"]}}]}`, maxRetries+1)
}

// resolve turns the method of a request into a full gRPC method name. Full
// names pass through; a short name ("Ping") is looked up among the methods
// the target lists through server reflection, reloaded when a name is not
// found (at most once a second).
func (t *target) resolve(ctx context.Context, method string) (string, *status.Status) {
	if method[0] == '/' {
		return method, nil
	}
	if strings.Contains(method, "/") {
		return "/" + method, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	full := t.methods[method]
	if len(full) == 0 && time.Since(t.loadedAt) > time.Second {
		if err := t.load(ctx); err != nil {
			return "", status.Newf(codes.Unimplemented,
				"vrpc: cannot resolve short method name %q on target %s: %v; call it by its full name (/package.Service/%s)", method, t.name, err, method)
		}
		full = t.methods[method]
	}
	switch len(full) {
	case 1:
		return full[0], nil
	case 0:
		return "", status.Newf(codes.Unimplemented, "vrpc: target %s has no method %q (has: %s)", t.name, method, strings.Join(t.all, ", "))
	default:
		return "", status.Newf(codes.InvalidArgument, "vrpc: method %q is ambiguous on target %s: %s; use the full name", method, t.name, strings.Join(full, ", "))
	}
}

// load lists the target's unary methods through grpc.reflection.v1.
func (t *target) load(ctx context.Context) error {
	stream, err := rpb.NewServerReflectionClient(t.conn).ServerReflectionInfo(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = stream.CloseSend() }()
	ask := func(req *rpb.ServerReflectionRequest) (*rpb.ServerReflectionResponse, error) {
		if err := stream.Send(req); err != nil {
			return nil, err
		}
		resp, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		if e := resp.GetErrorResponse(); e != nil {
			return nil, status.Error(codes.Code(e.ErrorCode), e.ErrorMessage)
		}
		return resp, nil
	}
	resp, err := ask(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_ListServices{}})
	if err != nil {
		return fmt.Errorf("server reflection: %w", err)
	}
	methods := map[string][]string{}
	var all []string
	for _, svc := range resp.GetListServicesResponse().GetService() {
		if strings.HasPrefix(svc.Name, "grpc.reflection.") {
			continue
		}
		fr, err := ask(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: svc.Name}})
		if err != nil {
			return fmt.Errorf("server reflection of %s: %w", svc.Name, err)
		}
		for _, raw := range fr.GetFileDescriptorResponse().GetFileDescriptorProto() {
			fd := new(descriptorpb.FileDescriptorProto)
			if err := proto.Unmarshal(raw, fd); err != nil {
				return fmt.Errorf("server reflection of %s: %w", svc.Name, err)
			}
			for _, sd := range fd.GetService() {
				name := sd.GetName()
				if fd.GetPackage() != "" {
					name = fd.GetPackage() + "." + name
				}
				if name != svc.Name {
					continue
				}
				for _, md := range sd.GetMethod() {
					if md.GetClientStreaming() || md.GetServerStreaming() {
						continue
					}
					full := "/" + name + "/" + md.GetName()
					methods[md.GetName()] = append(methods[md.GetName()], full)
					all = append(all, full)
				}
			}
		}
	}
	sort.Strings(all)
	t.methods, t.all, t.loadedAt = methods, all, time.Now()
	return nil
}
