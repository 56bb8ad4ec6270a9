package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/zeromicro/go-zero/core/logx"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/vclient"
	"github.com/nextpkg/vrpc/vgateway"
)

func newGatewayCmd() *cobra.Command {
	var file, listen string
	cmd := &cobra.Command{
		Use:   "gateway [-f client.yaml] [--listen host:port]",
		Short: "Run a gRPC gateway: any gRPC client's unary calls, carried over the bus",
		Long: `Run a vRPC gateway: a gRPC server that accepts any service and method and
carries each unary call over the bus, so that a gRPC client in any language
(grpc-go, grpc-js, Python grpcio, grpcurl) points at the gateway instead of the
target and changes nothing else.

A call goes to the target its vrpc-target request header names, else to the
one the services table of the client configuration maps its service to (full
service name, or a package prefix ending in "."; the longest match wins).
Unroutable calls and streaming methods fail with UNIMPLEMENTED.

The gateway serves grpc.health.v1, and server reflection for the targets of
its services table (when they have reflection), so 'grpcurl list' and
'grpcurl describe' work through it.

The configuration is a client.yaml (the keys of example/client.yaml) with a
gateway section:

  gateway:
    listen: 127.0.0.1:9000       # default 127.0.0.1:9000; --listen overrides
    max_message_bytes: 4194304   # request and reply limit (at most the client's); default 4 MiB
    drain_timeout: 30s           # how long a stop waits for calls in flight
    max_concurrent_streams: 1024 # calls open at once on one connection
    max_in_flight_bytes: 268435456  # bytes held for calls in flight; beyond: RESOURCE_EXHAUSTED
    keepalive: {time: 1m, timeout: 20s, min_time: 10s}
    max_header_list_bytes: 0     # 0: twice the client's max_metadata_bytes plus 16 KiB
    tls_cert_file: gateway.pem   # serve TLS (with tls_key_file); default plain text
    tls_key_file: gateway-key.pem
    tls_client_ca_file: ca.pem   # require client certificates of these CAs

The gateway may start before its bus: it waits for the bus as long as it
takes, logging what it waits for, and opens its gRPC port only once it has
reached it.

SIGINT or SIGTERM stops it gracefully: it stops taking calls and lets those in
flight finish (up to drain_timeout).`,
		Example: `  vrpc gateway -f example/client.yaml
  vrpc gateway -f client.yaml --listen 0.0.0.0:9000
  grpcurl -plaintext -d '{"message":"hi"}' 127.0.0.1:9000 demo.Demo/Ping`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runGateway(cmd.Context(), file, listen)
		},
		Annotations: map[string]string{logLevelAnnotation: "info"},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "client.yaml", "client configuration file with a gateway section (YAML, JSON or TOML)")
	cmd.Flags().StringVar(&listen, "listen", "", "gRPC address to listen on, host:port (default: gateway.listen, else 127.0.0.1:9000)")
	return cmd
}

// runGateway runs the gateway of the configuration file until ctx is done.
func runGateway(ctx context.Context, file, listen string) error {
	var cfg vgateway.FileConfig
	if err := vgateway.LoadConfig(file, &cfg); err != nil {
		return loadError(err, "example/client.yaml")
	}
	if listen != "" {
		if _, _, err := net.SplitHostPort(listen); err != nil {
			return configError(fmt.Errorf("--listen %q: want host:port (%v)", listen, err))
		}
		cfg.Gateway.Listen = listen
	}
	// The bus first: the port opens only once calls can be carried. The
	// gateway waits for its bus as long as it takes (until stopped).
	logx.Infof("vrpc gateway: connecting to the %s bus %v; gRPC on %s opens once it answers",
		cfg.RpcBus.Type, rpcbus.RedactAddresses(cfg.RpcBus.Brokers), cfg.Gateway.Listen)
	c, err := vclient.New(cfg.Config, vclient.WithWaitForBus(ctx))
	if errors.Is(err, rpcbus.ErrRefused) {
		return failure(fmt.Errorf("the bus refused the gateway's client: %w", err))
	}
	if err != nil {
		if ctx.Err() != nil {
			logx.Infof("vrpc gateway: stopped before reaching the bus: %v", err)
			return nil
		}
		return failure(fmt.Errorf("client config %s: %w", file, err))
	}
	gw, err := vgateway.New(c, cfg.Gateway)
	if err != nil {
		_ = c.Close()
		return configError(fmt.Errorf("client config %s: %w", file, err))
	}
	lis, err := net.Listen("tcp", cfg.Gateway.Listen)
	if err != nil {
		_ = c.Close()
		return failure(fmt.Errorf("gateway: listen on %s: %w", cfg.Gateway.Listen, err))
	}
	logx.Infof("vrpc gateway: serving gRPC on %s as client %s on %s bus %v; routes: %s",
		lis.Addr(), cfg.ClientID, cfg.RpcBus.Type, rpcbus.RedactAddresses(cfg.RpcBus.Brokers), routes(cfg.Services))

	if cfg.Security.Enabled() {
		reloadOnHangup(ctx, "the client's keys", c.ReloadKeys)
	}
	errc := make(chan error, 1)
	go func() { errc <- gw.Serve(lis) }()
	select {
	case err = <-errc:
		gw.Stop()
	case <-ctx.Done():
		logx.Info("vrpc gateway: stopping: letting the calls in flight finish")
		gw.Stop()
		err = <-errc
	}
	if cerr := c.Close(); cerr != nil {
		logx.Errorf("vrpc gateway: closing the client: %v", cerr)
	}
	if err != nil {
		return failure(err)
	}
	logx.Info("vrpc gateway: stopped")
	return nil
}

// routes describes the services table for the start-up log.
func routes(services map[string]string) string {
	if len(services) == 0 {
		return "none (services is empty: every call needs the " + vclient.TargetHeader + " header)"
	}
	keys := make([]string, 0, len(services))
	for k := range services {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + " -> " + services[k]
	}
	return strings.Join(parts, ", ")
}
