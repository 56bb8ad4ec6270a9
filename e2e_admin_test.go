package vrpc_test

import (
	"io"
	"net/http"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/internal/vtest"
)

// TestAdminEndpoints: host:port serves /healthz and /readyz, and
// rpc_server_conf.listen_on serves grpc.health.v1.
func TestAdminEndpoints(t *testing.T) {
	bus := vtest.StartKafka(t)
	addr := vtest.StartDemo(t, "t1")
	cfg := vtest.ServerConfig(bus, map[string]vrpc.Target{"demo": {Endpoint: addr}})
	cfg.Host, cfg.Port = "127.0.0.1", 0
	cfg.RpcServerConf.ListenOn = "127.0.0.1:0"
	s := vtest.StartServer(t, cfg)

	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + s.AdminAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
	}

	conn, err := grpc.NewClient(s.RPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hr, err := healthpb.NewHealthClient(conn).Check(testContext(t), &healthpb.HealthCheckRequest{})
	if err != nil || hr.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v, %v", hr, err)
	}
}
