package stamp_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/example/demo/demoserver"
	"github.com/nextpkg/vrpc/example/plugin/stamp"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/embedded"
	_ "github.com/nextpkg/vrpc/rpcbus/memory" // rpc_bus.type memory in the YAML test
	"github.com/nextpkg/vrpc/vclient"
	"github.com/nextpkg/vrpc/vserver"
)

func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.DiscardHandler)) // vRPC logs through slog.Default()
	os.Exit(m.Run())
}

// target is the demo service recording the metadata each call brings.
type target struct {
	mu   sync.Mutex
	seen []metadata.MD
}

func (tg *target) start(t *testing.T) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		tg.mu.Lock()
		tg.seen = append(tg.seen, md.Copy())
		tg.mu.Unlock()
		return h(ctx, req)
	}))
	demo.RegisterDemoServer(srv, &demoserver.Server{Name: "demo-1"})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// TestStamp runs the plugin in a server over an in-process Kafka, with
// only vRPC's public API, as a third party's test would.
func TestStamp(t *testing.T) {
	broker, err := embedded.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)
	bus := rpcbus.Config{Type: "kafka", Brokers: []string{broker.Addr()}}
	tg := &target{}

	server, err := vserver.NewServer(&vrpc.Config{
		Name: "stamping-server", Port: -1, RpcBus: bus,
		Targets: map[string]vrpc.Target{"demo": {Endpoint: tg.start(t)}},
		Plugins: []vrpc.PluginConf{{Name: stamp.Name, Enabled: true, Settings: map[string]any{
			"headers": map[string]any{"x-via": "vrpc"},
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- server.Start() }()
	select {
	case <-server.Ready():
	case err := <-errc:
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Stop(); <-errc })

	client, err := vclient.New(vclient.Config{ClientID: "billing", RpcBus: bus})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	payload, _ := proto.Marshal(&demo.Request{Message: "hi"})
	// The caller tries to pose as another client: the plugin overwrites it.
	resp, err := client.Call(ctx, "demo", "/demo.Demo/Ping", payload, map[string]string{"x-caller-id": "admin", "user-id": "7"})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Trailer.Get(stamp.StampedByTrailer); !slices.Equal(got, []string{"stamping-server"}) {
		t.Errorf("caller got %s %q, want [stamping-server]", stamp.StampedByTrailer, got)
	}
	tg.mu.Lock()
	defer tg.mu.Unlock()
	if len(tg.seen) != 1 {
		t.Fatalf("target saw %d calls, want 1", len(tg.seen))
	}
	md := tg.seen[0]
	for k, want := range map[string]string{"x-via": "vrpc", "x-caller-id": "billing", "user-id": "7"} {
		if got := md.Get(k); !slices.Equal(got, []string{want}) {
			t.Errorf("target saw %s %q, want [%s]", k, got, want)
		}
	}
}

// TestStampSettings: bad settings stop the server's start-up with an error
// naming the key.
func TestStampSettings(t *testing.T) {
	for settings, want := range map[string]map[string]any{
		`unknown key "header"`:    {"header": map[string]any{"x": "y"}},
		"settings.headers.X-Up":   {"headers": map[string]any{"X-Up": "y"}},
		"settings.client_header:": {"client_header": 7},
	} {
		_, err := vserver.NewServer(&vrpc.Config{
			Port: -1, RpcBus: rpcbus.Config{Type: "memory"},
			Targets: map[string]vrpc.Target{"demo": {Endpoint: "127.0.0.1:1"}},
			Plugins: []vrpc.PluginConf{{Name: stamp.Name, Enabled: true, Settings: want}},
		})
		if err == nil || !strings.Contains(err.Error(), settings) || !strings.Contains(err.Error(), "plugins[0] (stamp)") {
			t.Errorf("settings %v: error %v, want one naming %q", want, err, settings)
		}
	}
}

// TestServerYAML: the example configuration loads, with the third-party
// plugin and the built-in ones, and builds a server.
func TestServerYAML(t *testing.T) {
	var cfg vrpc.Config
	if err := vrpc.LoadConfig(filepath.Join("..", "server.yaml"), &cfg); err != nil {
		t.Fatal(err)
	}
	cfg.RpcBus = rpcbus.Config{Type: "memory"}
	cfg.Port = -1
	if _, err := vserver.NewServer(&cfg); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range cfg.Plugins {
		if p.Enabled {
			names = append(names, p.Name)
		}
	}
	if strings.Join(names, ",") != "metrics,logger,stamp" {
		t.Errorf("enabled plugins %q", names)
	}
}
