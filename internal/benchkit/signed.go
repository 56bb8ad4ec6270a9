package benchkit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/codec/seal"
	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/vclient"
	"github.com/nextpkg/vrpc/vconfig"
	"github.com/nextpkg/vrpc/vserver"
)

// The signed paths: vRPC with every request and reply signed.
const (
	PathHMAC    = "vRPC hmac"
	PathEd25519 = "vRPC ed25519"
)

// signedSetup is a second vRPC server, on the deployment's bus and target,
// that authenticates its two clients: one signing with a secret (HMAC),
// one with an Ed25519 key.
type signedSetup struct {
	server  *vserver.Server
	served  chan error
	clients []*vclient.Client
	hmac    demo.DemoClient
	ed25519 demo.DemoClient
}

// SignedPaths returns the three paths of Paths, then vRPC with signed
// calls: HMAC-SHA256 and Ed25519. The signed calls go to a server of their
// own, beside the deployment's, which serves the same target.
func (s *Setup) SignedPaths(ctx context.Context) ([]Path, error) {
	if s.signed == nil {
		if err := s.startSigned(ctx); err != nil {
			return nil, fmt.Errorf("signed server: %w", err)
		}
	}
	return append(s.Paths(), Path{PathHMAC, s.HMAC}, Path{PathEd25519, s.Ed25519}), nil
}

func (s *Setup) startSigned(ctx context.Context) error {
	d := s.Deployment
	secret := seal.GenerateSecret()
	clientPub, clientKey, err := seal.GenerateEd25519()
	if err != nil {
		return err
	}
	serverPub, serverKey, err := seal.GenerateEd25519()
	if err != nil {
		return err
	}
	target := d.Target + "-signed"
	cfg := &vrpc.Config{
		Name: d.ServerName + "-signed", Port: -1, RpcBus: d.Bus, DrainTimeout: 10 * time.Second,
		Targets: map[string]vrpc.Target{target: {Endpoint: d.TargetAddr}},
	}
	cfg.Topics.Request, cfg.Topics.Response = d.RequestTopic, d.ResponseTopic
	cfg.Security.Clients = map[string]vconfig.ClientKeysConf{
		"vrpc-bench-hmac":    {Allow: []string{"*"}, Keys: map[string]vconfig.KeyConf{"k1": {Secret: secret}}},
		"vrpc-bench-ed25519": {Allow: []string{"*"}, Keys: map[string]vconfig.KeyConf{"k1": {PublicKey: clientPub}}},
	}
	cfg.Security.SigningKey = vconfig.SigningKeyConf{ID: "bench-server", PrivateKey: serverKey}
	d.Consumes(cfg.Topics.Request+"."+target, cfg.Name)
	srv, err := vserver.NewServer(cfg)
	if err != nil {
		return err
	}
	ss := &signedSetup{served: make(chan error, 1)}
	s.signed = ss
	go func() { ss.served <- srv.Start() }()
	select {
	case <-srv.Ready():
		ss.server = srv
	case err := <-ss.served:
		return err
	case <-ctx.Done():
		srv.Stop()
		<-ss.served
		return ctx.Err()
	}
	open := func(id string, sec vconfig.ClientSecurityConf) (demo.DemoClient, error) {
		cc := d.ClientConfig(id)
		cc.Security = sec
		c, err := vclient.New(cc)
		if err != nil {
			return nil, err
		}
		ss.clients = append(ss.clients, c)
		return demo.NewDemoClient(vclient.NewConn(c, target)), nil
	}
	if ss.hmac, err = open("vrpc-bench-hmac", vconfig.ClientSecurityConf{KeyID: "k1", Secret: secret}); err != nil {
		return err
	}
	ss.ed25519, err = open("vrpc-bench-ed25519", vconfig.ClientSecurityConf{
		KeyID: "k1", PrivateKey: clientKey, ServerKeys: map[string]string{"bench-server": serverPub}})
	return err
}

// HMAC calls the demo target through vRPC, signed with a secret.
func (s *Setup) HMAC(ctx context.Context) error {
	return s.check(s.signed.hmac.Ping(ctx, s.req))
}

// Ed25519 calls the demo target through vRPC, signed with Ed25519 keys.
func (s *Setup) Ed25519(ctx context.Context) error {
	return s.check(s.signed.ed25519.Ping(ctx, s.req))
}

func (ss *signedSetup) close() error {
	var errs []error
	for _, c := range ss.clients {
		errs = append(errs, c.Close())
	}
	if ss.server != nil {
		ss.server.Stop()
		errs = append(errs, <-ss.served)
	}
	return errors.Join(errs...)
}
