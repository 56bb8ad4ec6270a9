package vgateway

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/gzip" // callers may compress their requests
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	rpbalpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"

	"github.com/nextpkg/vrpc/codec"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vclient"
	"github.com/nextpkg/vrpc/vconfig"
)

// Gateway is a gRPC server that carries every unary call it receives over
// the bus with a vclient.Client. It is safe for concurrent use.
type Gateway struct {
	c      *vclient.Client
	cfg    Config
	srv    *grpc.Server
	health *health.Server
	kinds  *methodKinds
	quit   chan struct{} // closed by Stop: ends reflection streams

	inFlight inFlight // bytes of the calls in flight (max_in_flight_bytes)
	tls      bool     // serving TLS

	mu      sync.Mutex
	lis     net.Listener
	serving bool
	stopped bool
	stop    sync.Once
}

// New returns a gateway that calls through c, which it does not close.
// cfg's zero fields take the defaults.
func New(c *vclient.Client, cfg Config) (*Gateway, error) {
	if c == nil {
		return nil, errors.New("vgateway: New needs a vclient.Client")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.SetDefaults()
	// The client could carry no more, either way: larger messages are
	// refused at the gateway's edge, before they are read whole.
	if clientMax := c.Config().MaxMessageBytes; cfg.MaxMessageBytes > clientMax {
		c.Logger().Info(fmt.Sprintf("vrpc gateway: gateway.max_message_bytes %d is above the client's max_message_bytes %d: the gateway uses %d",
			cfg.MaxMessageBytes, clientMax, clientMax))
		cfg.MaxMessageBytes = clientMax
	}
	if cfg.MaxHeaderListBytes == 0 {
		cfg.MaxHeaderListBytes = 2*c.Config().MaxMetadataBytes + headerListSlack
	}
	g := &Gateway{
		c:      c,
		cfg:    cfg,
		health: health.NewServer(),
		kinds:  newMethodKinds(c),
		quit:   make(chan struct{}),
	}
	g.inFlight.max = int64(cfg.MaxInFlightBytes)
	g.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	opts := []grpc.ServerOption{
		grpc.UnknownServiceHandler(g.limit(c.Handler(g.route))),
		grpc.ForceServerCodecV2(frameCodec{}),
		grpc.MaxRecvMsgSize(cfg.MaxMessageBytes),
		grpc.MaxSendMsgSize(cfg.MaxMessageBytes),
		grpc.MaxConcurrentStreams(cfg.MaxConcurrentStreams),
		grpc.MaxHeaderListSize(uint32(min(int64(cfg.MaxHeaderListBytes), math.MaxUint32))),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: cfg.Keepalive.Time, Timeout: cfg.Keepalive.Timeout}),
		// Pings with no call open are allowed: callers that keep idle
		// connections alive are common and harmless at min_time apart.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: cfg.Keepalive.MinTime, PermitWithoutStream: true}),
	}
	tc, err := cfg.TLSConfig()
	if err != nil {
		return nil, err
	}
	if tc != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tc)))
	}
	g.tls = tc != nil
	g.srv = grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(g.srv, g.health)
	r := &reflector{g: g}
	rpb.RegisterServerReflectionServer(g.srv, r)
	rpbalpha.RegisterServerReflectionServer(g.srv, reflectorV1alpha{r})
	return g, nil
}

// Serve accepts gRPC connections on lis until Stop, and reports SERVING
// on grpc.health.v1 meanwhile. It returns nil after Stop, and closes lis.
func (g *Gateway) Serve(lis net.Listener) error {
	g.mu.Lock()
	if g.stopped || g.serving {
		err := ErrServing
		if g.stopped {
			err = ErrStopped
		}
		g.mu.Unlock()
		if lis != nil {
			_ = lis.Close()
		}
		return err
	}
	g.serving, g.lis = true, lis
	g.mu.Unlock()
	if !g.tls && !vconfig.Loopback(lis.Addr().String()) {
		vconfig.WarnOnce(g.c.Logger(), fmt.Sprintf("gateway: serving gRPC in plain text on %s, which other machines can reach; "+
			"set gateway.tls_cert_file and tls_key_file (and tls_client_ca_file to require client certificates)", lis.Addr()))
	}
	g.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	err := g.srv.Serve(lis)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// ListenAndServe listens on the configured address and serves on it.
func (g *Gateway) ListenAndServe() error {
	lis, err := net.Listen("tcp", g.cfg.Listen)
	if err != nil {
		return fmt.Errorf("vgateway: gateway.listen %s: %w", g.cfg.Listen, err)
	}
	return g.Serve(lis)
}

// Config returns the gateway's configuration as it applies it: defaults
// filled in, max_message_bytes clamped to the client's, and
// max_header_list_bytes worked out.
func (g *Gateway) Config() Config { return g.cfg }

// Addr is the address the gateway serves on; nil before Serve.
func (g *Gateway) Addr() net.Addr {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.lis == nil {
		return nil
	}
	return g.lis.Addr()
}

// Stop stops taking connections and calls, reports NOT_SERVING, ends the
// reflection streams, waits for the calls in flight to return (up to
// drain_timeout; then it ends them), and makes Serve return.
func (g *Gateway) Stop() {
	g.stop.Do(func() {
		g.mu.Lock()
		g.stopped = true
		g.mu.Unlock()
		g.health.Shutdown()
		close(g.quit)
		done := make(chan struct{})
		go func() {
			g.srv.GracefulStop()
			close(done)
		}()
		t := time.NewTimer(g.cfg.DrainTimeout)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			g.c.Logger().Error(fmt.Sprintf("vrpc gateway: calls still in flight after drain_timeout %v: ending them", g.cfg.DrainTimeout))
			g.srv.Stop()
			<-done
		}
	})
}

// route picks the target of a call: the vrpc-target header, else the
// services table. A streaming method is refused here, before its first
// message is read.
func (g *Gateway) route(ctx context.Context, method string, md metadata.MD) (string, error) {
	target := ""
	if v := md.Get(vclient.TargetHeader); len(v) > 0 && v[0] != "" {
		target = v[0]
	} else if t, ok := g.c.ServiceTarget(method); ok {
		target = t
	} else {
		svc := serviceOf(method)
		prefix := ""
		if i := strings.LastIndexByte(svc, '.'); i >= 0 {
			prefix = fmt.Sprintf(", or its package prefix %q", svc[:i+1])
		}
		return "", status.Errorf(codes.Unimplemented,
			"vrpc gateway: no target for service %s (method %s): map it to one in the services table of the client config (services: {%s: <target>}%s) or set the %s request header",
			svc, method, svc, prefix, vclient.TargetHeader)
	}
	// A target name that cannot be one fails in Invoke; its schema is not
	// worth asking for.
	// The schema is asked with the caller's metadata, as the call itself
	// goes (the server may want its credentials).
	if rpcbus.ValidName(target) && g.kinds.streaming(metadata.NewOutgoingContext(ctx, md), target, method) {
		return "", status.Errorf(codes.Unimplemented,
			"vrpc gateway: %s is a streaming method of target %s: streaming is not supported yet (vRPC carries unary calls only)", method, target)
	}
	return target, nil
}

// serviceOf is the service of a full method name: "/pkg.Svc/M" -> "pkg.Svc".
func serviceOf(method string) string {
	svc := strings.TrimPrefix(method, "/")
	if i := strings.LastIndexByte(svc, '/'); i >= 0 {
		svc = svc[:i]
	}
	return svc
}

// frameCodec passes the calls the gateway forwards as bytes (codec.Raw on
// *codec.Frame) and encodes the messages of its own services, health and
// reflection, as protobuf: grpc.ForceServerCodecV2 applies to them all.
type frameCodec struct{}

var protoCodec = encoding.GetCodecV2("proto")

func (frameCodec) Marshal(v any) (mem.BufferSlice, error) {
	if _, ok := v.(*codec.Frame); ok {
		return codec.Raw{}.Marshal(v)
	}
	return protoCodec.Marshal(v)
}

func (frameCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if _, ok := v.(*codec.Frame); ok {
		return codec.Raw{}.Unmarshal(data, v)
	}
	return protoCodec.Unmarshal(data, v)
}

func (frameCodec) Name() string { return "proto" }
