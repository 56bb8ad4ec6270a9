package vgateway_test

import (
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/codec/seal"
	"github.com/nextpkg/vrpc/internal/vtest"
	"github.com/nextpkg/vrpc/vclient"
	"github.com/nextpkg/vrpc/vconfig"
	"github.com/nextpkg/vrpc/vgateway"
)

// TestSignedCalls: a gateway whose client has a key carries every caller's
// calls signed, sealed too with encrypt, to a server that authenticates its
// clients: calls and the reflection the gateway uses through the bus work,
// and the server's allow-list applies to the gateway's client id.
func TestSignedCalls(t *testing.T) {
	bus := vtest.StartKafka(t)
	t1, a1 := startTarget(t, "t1", true)
	_, a2 := startTarget(t, "t2", true)
	secret := seal.GenerateSecret()
	cfg := vtest.ServerConfig(bus, map[string]vrpc.Target{"t1": {Endpoint: a1}, "t2": {Endpoint: a2}})
	cfg.Security.Clients = map[string]vconfig.ClientKeysConf{
		"gateway": {Allow: []string{"t1"}, Keys: map[string]vconfig.KeyConf{"k1": {Secret: secret}}},
	}
	cfg.Security.RequireEncryption = true
	srv := vtest.StartServer(t, cfg)
	t.Cleanup(t1.unblock)

	c := vtest.StartClient(t, vclient.Config{ClientID: "gateway", RpcBus: bus, Services: services,
		Security: vconfig.ClientSecurityConf{KeyID: "k1", Secret: secret, Encrypt: true}})
	gw, err := vgateway.New(c, vgateway.Config{})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- gw.Serve(lis) }()
	t.Cleanup(func() {
		gw.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })

	ctx := testContext(t)
	resp, err := ping(ctx, conn, "signed through the gateway")
	if err != nil || resp.Message != "signed through the gateway" {
		t.Fatalf("a call through a signing gateway: %v, %v", resp, err)
	}
	// Reflection, which the gateway uses for callers, over the bus.
	refl, err := c.Reflect(ctx, "t1", &rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_ListServices{}})
	if err != nil || len(refl.GetListServicesResponse().GetService()) == 0 {
		t.Fatalf("reflection over a signed bus: %v, %v", refl, err)
	}
	// The gateway's client id may call t1 only.
	other := vclient.NewConn(c, "t2")
	if _, err := ping(ctx, other, "not allowed"); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a target outside the allow-list: %v, want PERMISSION_DENIED", err)
	}
	if st := srv.Stats(); st.Rejected == 0 {
		t.Fatalf("the server counted no refusal for the target outside the allow-list: %+v", st)
	}
}
