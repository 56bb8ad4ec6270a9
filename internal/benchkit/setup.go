package benchkit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/internal/inproc"
	"github.com/nextpkg/vrpc/vclient"
	"github.com/nextpkg/vrpc/vgateway"
)

// The paths, as Path.Name and Result.Path name them.
const (
	PathDirect = "direct gRPC"
	PathRaw    = "raw bus"
	PathVRPC   = "vRPC"
	// PathGateway is caller -> gateway (gRPC) -> bus -> server -> target.
	PathGateway = "gateway"
)

// Path is one way of making the demo call.
type Path struct {
	Name string
	Call CallFunc
}

// Setup is a deployment and the paths over it.
type Setup struct {
	// Deployment is the bus, demo target and vRPC server.
	Deployment *inproc.Deployment
	// Payload is the request message's size in bytes.
	Payload int

	req      *demo.Request
	reqBytes []byte
	conn     *grpc.ClientConn
	direct   demo.DemoClient
	raw      *RawBus
	client   *vclient.Client
	vrpc     demo.DemoClient

	// The gateway runs on a client of its own, as it would in its own
	// process; callers reach it over one gRPC conn.
	gwClient *vclient.Client
	gateway  *vgateway.Gateway
	gwServed chan error
	gwConn   *grpc.ClientConn
	gw       demo.DemoClient

	signed *signedSetup // SignedPaths
}

// NewSetup starts a deployment, a gRPC conn to its target, a RawBus and a
// vRPC client on its bus. payload is the size of the Ping message.
func NewSetup(ctx context.Context, o inproc.Options, payload int) (s *Setup, err error) {
	if o.ServerName == "" {
		o.ServerName = "vrpc-bench"
	}
	s = &Setup{Payload: payload, req: &demo.Request{Message: strings.Repeat("x", payload)}}
	defer func() {
		if err != nil {
			_ = s.Close()
			s = nil
		}
	}()
	if s.reqBytes, err = proto.Marshal(s.req); err != nil {
		return s, err
	}
	if s.Deployment, err = inproc.Start(ctx, o); err != nil {
		return s, err
	}
	if s.conn, err = grpc.NewClient(s.Deployment.TargetAddr, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
		return s, err
	}
	s.direct = demo.NewDemoClient(s.conn)
	// The raw round trip uses names beside the deployment's: the defaults
	// (RawTopic, ...) with the default topics, names unique to the run
	// where the deployment has them.
	d := s.Deployment
	names := RawNames{Topic: d.RequestTopic + ".bench-raw", Group: d.ServerName + "-raw", Inbox: d.ResponseTopic + ".bench-raw"}
	d.Consumes(names.Topic, names.Group)
	if s.raw, err = NewRawBus(ctx, d.Bus, names); err != nil {
		return s, fmt.Errorf("raw bus: %w", err)
	}
	s.client, err = vclient.New(d.ClientConfig("vrpc-bench"))
	if err != nil {
		return s, fmt.Errorf("vRPC client: %w", err)
	}
	s.vrpc = demo.NewDemoClient(vclient.NewConn(s.client, s.Deployment.Target))
	if err = s.startGateway(); err != nil {
		return s, fmt.Errorf("gateway: %w", err)
	}
	return s, nil
}

func (s *Setup) startGateway() error {
	var err error
	cfg := s.Deployment.ClientConfig("vrpc-bench-gateway")
	cfg.Services = map[string]string{"demo.Demo": s.Deployment.Target}
	s.gwClient, err = vclient.New(cfg)
	if err != nil {
		return err
	}
	if s.gateway, err = vgateway.New(s.gwClient, vgateway.Config{}); err != nil {
		return err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	s.gwServed = make(chan error, 1)
	go func() { s.gwServed <- s.gateway.Serve(lis) }()
	if s.gwConn, err = grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
		return err
	}
	s.gw = demo.NewDemoClient(s.gwConn)
	return nil
}

// Paths returns the three paths in the order `vrpc bench` reports them.
func (s *Setup) Paths() []Path {
	return []Path{{PathDirect, s.Direct}, {PathRaw, s.Raw}, {PathVRPC, s.VRPC}}
}

// GatewayPaths returns the paths of `vrpc bench --via gateway`: the three
// of Paths, then the gateway.
func (s *Setup) GatewayPaths() []Path {
	return append(s.Paths(), Path{PathGateway, s.Gateway})
}

// Direct calls the demo target over loopback gRPC.
func (s *Setup) Direct(ctx context.Context) error {
	return s.check(s.direct.Ping(ctx, s.req))
}

// Raw makes the bus round trip with no gRPC hop.
func (s *Setup) Raw(ctx context.Context) error {
	b, err := s.raw.Call(ctx, s.reqBytes)
	if err == nil && len(b) != len(s.reqBytes) {
		err = fmt.Errorf("raw bus: reply of %d bytes, want %d", len(b), len(s.reqBytes))
	}
	return err
}

// VRPC calls the demo target through vRPC.
func (s *Setup) VRPC(ctx context.Context) error {
	return s.check(s.vrpc.Ping(ctx, s.req))
}

// Gateway calls the demo target through the gateway: a gRPC call to the
// gateway, which carries it over the bus.
func (s *Setup) Gateway(ctx context.Context) error {
	return s.check(s.gw.Ping(ctx, s.req))
}

func (s *Setup) check(resp *demo.Response, err error) error {
	if err == nil && len(resp.GetMessage()) != s.Payload {
		err = fmt.Errorf("reply message of %d bytes, want %d", len(resp.GetMessage()), s.Payload)
	}
	return err
}

// Close closes the client side first, then the deployment.
func (s *Setup) Close() error {
	var errs []error
	if s.gwConn != nil {
		errs = append(errs, s.gwConn.Close())
	}
	if s.gateway != nil {
		s.gateway.Stop()
		errs = append(errs, <-s.gwServed)
	}
	if s.gwClient != nil {
		errs = append(errs, s.gwClient.Close())
	}
	if s.client != nil {
		errs = append(errs, s.client.Close())
	}
	if s.signed != nil {
		errs = append(errs, s.signed.close())
	}
	if s.raw != nil {
		errs = append(errs, s.raw.Close())
	}
	if s.conn != nil {
		errs = append(errs, s.conn.Close())
	}
	if s.Deployment != nil {
		errs = append(errs, s.Deployment.Close())
	}
	return errors.Join(errs...)
}
