package vrpc

import "github.com/nextpkg/vrpc/vconfig"

// The configuration types live in package vconfig, a leaf that links no
// client, server or bus; these aliases keep the seed's names.
type (
	// Config is the server configuration, server.yaml; vserver.NewServer
	// takes it.
	Config = vconfig.Config
	// ClientConfig is the client configuration, client.yaml.
	ClientConfig = vconfig.ClientConfig
	// Target is one gRPC service a server forwards to.
	Target = vconfig.Target
	// TargetSettings are the keys of targets.<name>.settings.
	TargetSettings = vconfig.TargetSettings
	// PluginConf is one entry of plugins.
	PluginConf = vconfig.PluginConf
	// DedupConf is dedup: where a server remembers the requests it served.
	DedupConf = vconfig.DedupConf
	// RedisConf is dedup.redis.
	RedisConf = vconfig.RedisConf
	// RpcServerConf is rpc_server_conf: the server's own gRPC endpoint.
	RpcServerConf = vconfig.RpcServerConf
)

// Defaults of the server configuration; see package vconfig.
const (
	DefaultServerName     = vconfig.DefaultServerName
	DefaultTargetTimeout  = vconfig.DefaultTargetTimeout
	DefaultMaxInFlight    = vconfig.DefaultMaxInFlight
	DefaultMaxMessageSize = vconfig.DefaultMaxMessageSize
	DefaultDrainTimeout   = vconfig.DefaultDrainTimeout
	DefaultDedupSize      = vconfig.DefaultDedupSize
	DefaultDedupTTL       = vconfig.DefaultDedupTTL

	DefaultReplyTimeout      = vconfig.DefaultReplyTimeout
	DefaultDeadLetterTimeout = vconfig.DefaultDeadLetterTimeout
	DefaultMaxMetadataBytes  = vconfig.DefaultMaxMetadataBytes
	DefaultMaxIDBytes        = vconfig.DefaultMaxIDBytes
	DefaultMaxInFlightBytes  = vconfig.DefaultMaxInFlightBytes
	DefaultDedupMaxBytes     = vconfig.DefaultDedupMaxBytes
)

// ParseTargetSettings decodes and checks targets.<name>.settings.
func ParseTargetSettings(name string, m map[string]any) (TargetSettings, error) {
	return vconfig.ParseTargetSettings(name, m)
}

// LoadConfig loads server.yaml into cfg, expanding ${ENV} references; an
// unknown key is an error (see vconfig.LoadFile).
func LoadConfig(file string, cfg *Config) error { return vconfig.Load(file, cfg) }

// LoadClientConfig loads client.yaml into cfg as LoadConfig does
// server.yaml.
func LoadClientConfig(file string, cfg *ClientConfig) error { return vconfig.LoadClient(file, cfg) }
