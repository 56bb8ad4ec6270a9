package vserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/nextpkg/vrpc/codec/schema"
	"github.com/nextpkg/vrpc/vconfig"
)

// target is one configured gRPC service and the conn to it.
type target struct {
	name    string
	conn    *grpc.ClientConn
	timeout time.Duration
	schema  *schema.Source

	// maxRetries is targets.<name>.settings.max_retries: how often a call
	// that never reached the target is tried again.
	maxRetries int
	// idempotent holds the idempotent_methods, as "/pkg.Service/" (all its
	// methods) or "/pkg.Service/Method"; gRPC's own retry policy covers them.
	idempotent []string

	mu         sync.Mutex // guards lastReset and lastRedial
	lastReset  time.Time
	lastRedial time.Time
}

func newTarget(name string, t vconfig.Target, maxMsg int) (*target, error) {
	timeout, _ := time.ParseDuration(t.Timeout) // checked by Validate
	ts, err := vconfig.ParseTargetSettings(name, t.Settings)
	if err != nil {
		return nil, err
	}
	tlsConfig, err := ts.TLSConfig(name)
	if err != nil {
		return nil, err
	}
	creds := insecure.NewCredentials()
	if tlsConfig != nil {
		creds = credentials.NewTLS(tlsConfig)
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsg), grpc.MaxCallSendMsgSize(maxMsg)),
	}
	if ts.MaxRetries > 0 && len(ts.IdempotentMethods) > 0 {
		opts = append(opts, grpc.WithDefaultServiceConfig(retryPolicy(ts)))
	}
	conn, err := grpc.NewClient(t.Endpoint, opts...)
	if err != nil {
		return nil, fmt.Errorf("targets.%s.endpoint %q: %w", name, t.Endpoint, err)
	}
	tgt := &target{name: name, conn: conn, timeout: timeout, maxRetries: ts.MaxRetries}
	for _, m := range ts.IdempotentMethods {
		m = "/" + strings.TrimPrefix(m, "/")
		if strings.Count(m, "/") == 1 {
			m += "/" // a whole service
		}
		tgt.idempotent = append(tgt.idempotent, m)
	}
	if ts.DescriptorSet != "" {
		if tgt.schema, err = schema.FromDescriptorSet(ts.DescriptorSet); err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("targets.%s.settings.descriptor_set: %w", name, err)
		}
	} else {
		tgt.schema = schema.NewSource(func(ctx context.Context, req *rpb.ServerReflectionRequest) (*rpb.ServerReflectionResponse, error) {
			return tgt.reflect(ctx, req, nil)
		})
	}
	return tgt, nil
}

// retryPolicy is the gRPC service config of the retries of a target's
// idempotent methods (see vconfig.TargetSettings): whatever the target may
// have done, after UNAVAILABLE, ABORTED, RESOURCE_EXHAUSTED, INTERNAL or
// UNKNOWN. grpc-go backs off exponentially with jitter and never retries
// past the call's deadline. The other methods are retried by the server
// itself, and only when the call never reached the target (see
// Server.invoke).
func retryPolicy(ts vconfig.TargetSettings) string {
	var names []map[string]string
	for _, m := range ts.IdempotentMethods {
		svc, method, _ := strings.Cut(strings.TrimPrefix(m, "/"), "/")
		name := map[string]string{"service": svc}
		if method != "" {
			name["method"] = method
		}
		names = append(names, name)
	}
	policy := map[string]any{
		"maxAttempts": ts.MaxRetries + 1, "initialBackoff": "0.05s", "maxBackoff": "1s", "backoffMultiplier": 2,
		"retryableStatusCodes": []string{"UNAVAILABLE", "ABORTED", "RESOURCE_EXHAUSTED", "INTERNAL", "UNKNOWN"},
	}
	b, _ := json.Marshal(map[string]any{"methodConfig": []map[string]any{{"name": names, "retryPolicy": policy}}})
	return string(b)
}

// isIdempotent reports whether method (full, with its leading slash) is
// one of the target's idempotent methods.
func (t *target) isIdempotent(method string) bool {
	for _, m := range t.idempotent {
		if method == m || strings.HasSuffix(m, "/") && strings.HasPrefix(method, m) {
			return true
		}
	}
	return false
}

// reflect exchanges one request with the target's server reflection
// service, on a stream of its own.
func (t *target) reflect(ctx context.Context, req *rpb.ServerReflectionRequest, md metadata.MD) (*rpb.ServerReflectionResponse, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the stream
	if len(md) > 0 {
		ctx = metadata.NewOutgoingContext(ctx, md)
	}
	stream, err := rpb.NewServerReflectionClient(t.conn).ServerReflectionInfo(ctx)
	if err != nil {
		return nil, err
	}
	// io.EOF: the target ended the stream (as one without reflection
	// does); Recv returns its status.
	if err := stream.Send(req); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	_ = stream.CloseSend()
	return stream.Recv()
}

// describe finds a method's descriptor by full or short name. When the
// target says it has no such method, the cached schema is dropped and
// asked again (at most once a second), in case the target was upgraded.
func (t *target) describe(ctx context.Context, method string) (protoreflect.MethodDescriptor, *status.Status) {
	md, err := t.schema.Resolve(ctx, method)
	if status.Code(err) == codes.Unimplemented && t.mayReset() {
		t.schema.Reset()
		md, err = t.schema.Resolve(ctx, method)
	}
	if err != nil {
		st := status.Convert(err)
		return nil, status.Newf(st.Code(), "vrpc: target %s: %s", t.name, st.Message())
	}
	if schema.Streaming(md) {
		return nil, status.Newf(codes.Unimplemented, "vrpc: %s is a streaming method; vRPC carries unary calls only (streaming is not supported yet)", schema.FullMethod(md))
	}
	return md, nil
}

// mayReset reports whether the cached schema may be dropped now: at most
// once a second.
func (t *target) mayReset() bool { return t.atMostEvery(&t.lastReset, time.Second) }

// mayRedial reports whether a retry may ask the conn to reconnect now,
// skipping its backoff: at most every 50ms, so that a burst of calls to a
// target that is down does not become a burst of dials.
func (t *target) mayRedial() bool { return t.atMostEvery(&t.lastRedial, 50*time.Millisecond) }

// atMostEvery reports whether it is at least every since *last, and if so
// sets *last to now.
func (t *target) atMostEvery(last *time.Time, every time.Duration) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	if now.Sub(*last) < every {
		return false
	}
	*last = now
	return true
}

// fullMethod normalizes a method name that is already full.
func fullMethod(method string) (string, bool) {
	switch {
	case method == "":
		return "", false
	case method[0] == '/':
		return method, true
	case strings.Contains(method, "/"):
		return "/" + method, true
	}
	return "", false
}
