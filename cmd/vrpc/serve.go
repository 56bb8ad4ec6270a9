package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/zeromicro/go-zero/core/logx"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/embedded"
	"github.com/nextpkg/vrpc/vserver"
)

func newServeCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "serve [-f server.yaml]",
		Short: "Run a vRPC server: forward the requests on the bus to the gRPC targets",
		Long: `Run a vRPC server.

The server consumes the request topic of each target in its configuration
(<topics.request>.<target>), forwards each request to the target over gRPC and
publishes the reply to the address the request carries. Servers with the same
name share the requests as one consumer group.

With rpc_bus.type embedded the server also hosts the Kafka broker, on
rpc_bus.brokers[0] (default 127.0.0.1:9092): clients and other servers reach it
with type kafka, and no Kafka install is needed.

With a security section, SIGHUP reads the keys again (security.keys_file and
every *_file of a key) without a restart; the keys file is also read again
whenever it changes.

It may start before its bus: it waits for the bus as long as it takes, logging
what it waits for, with /healthz up and /readyz not ready meanwhile. A bus that
answers and refuses (credentials, permissions) stops it at once.

SIGINT or SIGTERM stops it gracefully: it stops consuming, lets the calls in
flight finish and publish their replies (up to drain_timeout), then exits.

The configuration keys are those of example/server.yaml; ${ENV} references
are expanded. An invalid configuration exits with status 2 and a message
naming the key.`,
		Example: `  vrpc serve -f example/server.yaml
  vrpc serve -f example/embedded.yaml   # hosts Kafka itself`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve(cmd.Context(), file)
		},
		Annotations: map[string]string{logLevelAnnotation: "info"},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "server.yaml", "server configuration file (YAML, JSON or TOML)")
	return cmd
}

// serve runs the server of the configuration file until ctx is done.
func serve(ctx context.Context, file string) error {
	var cfg vrpc.Config
	if err := vrpc.LoadConfig(file, &cfg); err != nil {
		return loadError(err, "example/server.yaml")
	}
	// The server gets a bus opened here, so that an embedded broker's
	// address can be reported and the bus outlives the server's drain.
	bus, err := rpcbus.New(cfg.RpcBus)
	if err != nil {
		return configError(fmt.Errorf("server config %s: %w", file, err))
	}
	srv, err := vserver.NewServer(&cfg, vserver.WithBus(bus))
	if err != nil {
		_ = bus.Close()
		return configError(fmt.Errorf("server config %s: %w", file, err))
	}
	if eb, ok := bus.(*embedded.Bus); ok {
		logx.Infof("vrpc: hosting the Kafka broker on %v (rpc_bus.type embedded); clients reach it with rpc_bus.type kafka", eb.Brokers())
	}

	if cfg.Security.Enabled() {
		reloadOnHangup(ctx, "security keys", srv.ReloadKeys)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Start() }()
	select {
	case err = <-errc:
	case <-ctx.Done():
		logx.Info("vrpc: stopping: draining the calls in flight")
		srv.Stop()
		err = <-errc
	}
	if cerr := bus.Close(); cerr != nil {
		logx.Errorf("vrpc: closing the bus: %v", cerr)
	}
	if err != nil {
		return failure(err)
	}
	logx.Info("vrpc: stopped")
	return nil
}
