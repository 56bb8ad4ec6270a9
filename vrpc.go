// Package vrpc carries synchronous gRPC calls over a message queue.
//
// A caller keeps its ordinary gRPC code; vRPC publishes each unary call on
// a bus (Kafka by default), a vRPC server (package vserver) consumes it,
// forwards the raw bytes to the real gRPC target and publishes the reply to
// the address of exactly the client that asked.
//
// This package holds the configuration types and a process-wide client:
//
//	vrpc.MustInitClient()          // client.yaml, or vrpc.WithConfig(cfg)
//	defer vrpc.Close()
//	c := zrpc.MustNewClient(zrpc.RpcClientConf{Target: "vrpc:///demo"},
//		zrpc.WithUnaryClientInterceptor(vrpc.Interceptor()))
//	resp, err := demo.NewDemoClient(c.Conn()).Ping(ctx, req)
package vrpc

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"

	"github.com/nextpkg/vrpc/internal/version"
	"github.com/nextpkg/vrpc/rpcbus"
	_ "github.com/nextpkg/vrpc/rpcbus/kafka" // the default rpc_bus.type; other buses are a blank import away
	"github.com/nextpkg/vrpc/vclient"
)

// Version is the vRPC release.
const Version = version.Release

// ConfigEnv names the environment variable MustInitClient reads the client
// configuration file from when it is given none.
const ConfigEnv = "VRPC_CLIENT_CONFIG"

var (
	mu     sync.RWMutex
	client *vclient.Client
)

// InitOption configures InitClient.
type InitOption interface{ apply(*initOptions) }

type initOptions struct {
	cfg  *ClientConfig
	file string
	bus  rpcbus.Bus
}

type initOptionFunc func(*initOptions)

func (f initOptionFunc) apply(o *initOptions) { f(o) }

// WithConfig gives the client configuration directly.
func WithConfig(cfg ClientConfig) InitOption {
	return initOptionFunc(func(o *initOptions) { o.cfg = &cfg })
}

// WithConfigFile loads the client configuration from a YAML (or JSON,
// TOML) file, strictly (LoadClientConfig).
func WithConfigFile(path string) InitOption {
	return initOptionFunc(func(o *initOptions) { o.file = path })
}

// WithBus makes the client use an already open bus, which it will not close.
func WithBus(bus rpcbus.Bus) InitOption {
	return initOptionFunc(func(o *initOptions) { o.bus = bus })
}

// InitClient opens the process-wide client. Without WithConfig or
// WithConfigFile it loads the file named by $VRPC_CLIENT_CONFIG, else
// client.yaml or etc/client.yaml in the working directory if one exists,
// else uses the defaults (Kafka on 127.0.0.1:9092).
func InitClient(opts ...InitOption) error {
	var o initOptions
	for _, opt := range opts {
		opt.apply(&o)
	}
	cfg, err := clientConfig(o)
	if err != nil {
		return err
	}
	var copts []vclient.Option
	if o.bus != nil {
		copts = append(copts, vclient.WithBus(o.bus))
	}
	c, err := vclient.New(cfg, copts...)
	if err != nil {
		return err
	}
	mu.Lock()
	old := client
	client = c
	mu.Unlock()
	if old != nil {
		return old.Close()
	}
	return nil
}

func clientConfig(o initOptions) (ClientConfig, error) {
	if o.cfg != nil {
		return *o.cfg, nil
	}
	file := o.file
	if file == "" {
		file = os.Getenv(ConfigEnv)
	}
	if file == "" {
		for _, f := range []string{"client.yaml", "etc/client.yaml"} {
			if _, err := os.Stat(f); err == nil {
				file = f
				break
			}
		}
	}
	var cfg ClientConfig
	if file == "" {
		return cfg, nil // vclient.New applies the defaults
	}
	if err := LoadClientConfig(file, &cfg); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// MustInitClient is InitClient that panics on error.
func MustInitClient(opts ...InitOption) {
	if err := InitClient(opts...); err != nil {
		panic(err)
	}
}

// GetClient returns the process-wide client, or nil before InitClient.
func GetClient() *vclient.Client {
	mu.RLock()
	defer mu.RUnlock()
	return client
}

// Close closes the process-wide client: calls in flight get their replies
// or fail with UNAVAILABLE.
func Close() error {
	mu.Lock()
	c := client
	client = nil
	mu.Unlock()
	if c == nil {
		return nil
	}
	return c.Close()
}

// WithTarget makes every call through an interceptor go to target.
func WithTarget(target string) vclient.CallOption { return vclient.WithTarget(target) }

// Interceptor returns a unary client interceptor that carries calls over
// the process-wide client; see vclient.Client.UnaryClientInterceptor for
// how it picks a call's target. It may be created before InitClient; calls
// made before it fail with FAILED_PRECONDITION.
func Interceptor(opts ...vclient.CallOption) grpc.UnaryClientInterceptor {
	type bound struct {
		c    *vclient.Client
		icpt grpc.UnaryClientInterceptor
	}
	var cur atomic.Pointer[bound] // rebuilt only when the global client changes
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, callOpts ...grpc.CallOption) error {
		c := GetClient()
		if c == nil {
			return errNotInitialized
		}
		b := cur.Load()
		if b == nil || b.c != c {
			b = &bound{c: c, icpt: c.UnaryClientInterceptor(opts...)}
			cur.Store(b)
		}
		return b.icpt(ctx, method, req, reply, cc, invoker, callOpts...)
	}
}

// NewConn returns a grpc.ClientConnInterface that carries calls to target
// over the process-wide client: demo.NewDemoClient(vrpc.NewConn("demo")).
func NewConn(target string) grpc.ClientConnInterface {
	return globalConn{target}
}

type globalConn struct{ target string }

func (g globalConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	c := GetClient()
	if c == nil {
		return errNotInitialized
	}
	return vclient.NewConn(c, g.target).Invoke(ctx, method, args, reply, opts...)
}

func (g globalConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	c := GetClient()
	if c == nil {
		return nil, errNotInitialized
	}
	return vclient.NewConn(c, g.target).NewStream(ctx, desc, method, opts...)
}

var errNotInitialized = status.Error(codes.FailedPrecondition, "vrpc: client not initialized: call vrpc.MustInitClient first")

func init() {
	resolver.Register(globalBuilder{})
}

// globalBuilder resolves "vrpc:///<target>" for any grpc.ClientConn to the
// process-wide client's loopback endpoint.
type globalBuilder struct{}

func (globalBuilder) Scheme() string { return vclient.Scheme }

func (globalBuilder) Build(t resolver.Target, cc resolver.ClientConn, o resolver.BuildOptions) (resolver.Resolver, error) {
	c := GetClient()
	if c == nil {
		return nil, errors.New("vrpc: vrpc:/// target dialled before vrpc.MustInitClient")
	}
	return c.ResolverBuilder().Build(t, cc, o)
}
