package vconfig

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sort"
	"time"

	"github.com/nextpkg/vrpc/internal/settings"
	"github.com/nextpkg/vrpc/rpcbus"
)

// Defaults of the server configuration, applied by LoadFile through the
// struct tags and by Config.SetDefaults for configs built in Go.
const (
	DefaultServerName     = "vrpc-server"
	DefaultAdminHost      = "127.0.0.1"
	DefaultTargetTimeout  = "30s"
	DefaultMaxInFlight    = 1024
	DefaultMaxMessageSize = 4 << 20
	DefaultDrainTimeout   = 30 * time.Second
	DefaultDedupSize      = 100000
	DefaultDedupTTL       = 10 * time.Minute
	DefaultDedupMaxBytes  = 64 << 20
	DefaultMaxRequestAge  = 10 * time.Minute

	DefaultReplyTimeout      = 5 * time.Second
	DefaultDeadLetterTimeout = 10 * time.Second
	DefaultMaxIDBytes        = 256
	DefaultMaxInFlightBytes  = 64 << 20
	// MinMaxIDBytes is the least max_id_bytes takes: room for the ids,
	// reply addresses and method names vRPC's own clients make.
	MinMaxIDBytes = 64
)

// Config is the server configuration, server.yaml. See README.md for every
// key; vserver.NewServer takes it (and the root package names it
// vrpc.Config).
type Config struct {
	// Name is the server's consumer group: servers with the same name
	// share the requests of their targets.
	Name string `json:"name,default=vrpc-server"`
	// Host and Port are the admin HTTP address (/healthz, /readyz,
	// /metrics, /debug/vrpc). Host defaults to 127.0.0.1: /debug/vrpc
	// tells whoever asks about the bus and the targets, so reaching it
	// from elsewhere is the operator's choice (host: 0.0.0.0). In YAML
	// port defaults to 8080; in Go, port 0 picks a free port and a negative
	// port disables the admin endpoint.
	Host string `json:"host,default=127.0.0.1"`
	Port int    `json:"port,default=8080"`
	// RpcServerConf is the server's own gRPC listener (grpc.health.v1).
	RpcServerConf RpcServerConf `json:"rpc_server_conf,optional"`
	// RpcBus is the bus requests are consumed from.
	RpcBus rpcbus.Config `json:"rpc_bus"`
	// Topics: the server consumes "<request>.<target>" for each target.
	// Response is the prefix clients use for their reply addresses; servers
	// reply to the address each request carries.
	Topics struct {
		Request  string `json:",default=vrpc.requests"`
		Response string `json:",default=vrpc.responses"`
	} `json:"topics"`
	// Targets are the gRPC services this server forwards to, by name.
	Targets map[string]Target `json:"targets"`
	// Plugins wrap every forwarded call, in the order listed.
	Plugins []PluginConf `json:"plugins,optional"`
	// MaxInFlight bounds the requests being forwarded at once.
	MaxInFlight int `json:"max_in_flight,default=1024"`
	// MaxMessageSize bounds request and reply payloads (gRPC's default 4 MiB).
	MaxMessageSize int `json:"max_message_size,default=4194304"`
	// MaxRequestAge is how far back a server group with no recorded
	// position on a request topic (a new name, or a position the bus no
	// longer keeps) starts reading: at the first request published at most
	// this long ago, not at the oldest one the bus keeps, which other
	// groups may have served long ago and whose callers gave up. Set it to
	// the longest deadline the servers' callers use; a negative value
	// starts such a group at the oldest request kept.
	MaxRequestAge time.Duration `json:"max_request_age,default=10m"`
	// DrainTimeout bounds how long Stop waits for in-flight calls.
	DrainTimeout time.Duration `json:"drain_timeout,default=30s"`
	// ReplyTimeout bounds publishing one reply, retries included. The
	// sender's deadline never extends it: a reply address the server cannot
	// write to costs a worker this long at most. A reply address the bus
	// does not know is tried again within it while the sender's deadline
	// has not passed (a client declares its address again a moment after
	// a broker restart).
	ReplyTimeout time.Duration `json:"reply_timeout,default=5s"`
	// DeadLetterTimeout bounds setting one message aside on the dead-letter
	// topic, retries included. A message not set aside by then stays
	// unacknowledged (the bus delivers it again) and frees its worker.
	DeadLetterTimeout time.Duration `json:"dead_letter_timeout,default=10s"`
	// MaxMetadataBytes bounds a request's metadata, all keys and values
	// together as encoded on the wire.
	MaxMetadataBytes int `json:"max_metadata_bytes,default=65536"`
	// MaxIDBytes bounds each of a request's id, client id, reply address,
	// target and method (at least 64).
	MaxIDBytes int `json:"max_id_bytes,default=256"`
	// MaxInFlightBytes bounds the bytes of the requests being served at
	// once: past it the server waits for room before taking the next one.
	MaxInFlightBytes int `json:"max_in_flight_bytes,default=67108864"`
	// MaxInFlightPerClient bounds the requests of one client id being
	// served at once; a client over it is answered RESOURCE_EXHAUSTED.
	// 0 leaves it off.
	MaxInFlightPerClient int `json:"max_in_flight_per_client,optional"`
	// Dedup makes a request delivered again answered from its stored reply
	// instead of calling the target twice.
	Dedup DedupConf `json:"dedup"`
	// Security authenticates requests and signs replies (see
	// SecurityConf); off when it names no client.
	Security SecurityConf `json:"security,optional"`
}

// DedupConf is dedup: where a server remembers the requests it served.
type DedupConf struct {
	// Store is memory (this server only), redis (shared by the servers of
	// a target: use it when several serve one), or none.
	Store string `json:"store,default=memory,options=memory|redis|none"`
	// Size bounds the requests the memory store remembers.
	Size int `json:"size,default=100000"`
	// TTL is how long a reply is remembered.
	TTL time.Duration `json:"ttl,default=10m"`
	// MaxBytes bounds the memory store in bytes of keys and replies (least
	// recently used dropped first), and the redis store in the size of one
	// stored reply (a larger one is not stored).
	MaxBytes int `json:"max_bytes,default=67108864"`
	// Redis is the redis store's server.
	Redis RedisConf `json:"redis,optional"`
}

// RedisConf is dedup.redis.
type RedisConf struct {
	Addr     string `json:"addr,default=127.0.0.1:6379"`
	Username string `json:"username,optional"`
	Password string `json:"password,optional"`
	DB       int    `json:"db,optional"`
	// Prefix is prepended to every key.
	Prefix string `json:"prefix,default=vrpc:dedup:"`

	// TLS connects with TLS; any other tls_* key turns it on too. The keys
	// mean what they mean in rpc_bus.settings: TLSCAFile the PEM CAs to
	// trust instead of the system's, TLSCertFile and TLSKeyFile a client
	// certificate and its key (mutual TLS), TLSServerName the name to
	// verify the server's certificate against when it is not addr's host,
	// TLSInsecureSkipVerify any certificate (tests only).
	TLS                   bool   `json:"tls,optional"`
	TLSCAFile             string `json:"tls_ca_file,optional"`
	TLSCertFile           string `json:"tls_cert_file,optional"`
	TLSKeyFile            string `json:"tls_key_file,optional"`
	TLSServerName         string `json:"tls_server_name,optional"`
	TLSInsecureSkipVerify bool   `json:"tls_insecure_skip_verify,optional"`
}

// TLSConfig returns the TLS configuration of the connection to Redis, or
// nil for plain text. It reads the files, so a bad one is an error naming
// its key. Without tls_server_name, the certificate is checked against
// addr's host.
func (r *RedisConf) TLSConfig() (*tls.Config, error) {
	t := settings.TLS{TLS: r.TLS, CAFile: r.TLSCAFile, CertFile: r.TLSCertFile, KeyFile: r.TLSKeyFile,
		ServerName: r.TLSServerName, InsecureSkipVerify: r.TLSInsecureSkipVerify}
	c, err := t.Config()
	if ke, ok := err.(*settings.KeyError); ok {
		return nil, fmt.Errorf("dedup.redis.%s: %v", ke.Key, ke.Err)
	}
	if c != nil && c.ServerName == "" {
		if host, _, err := net.SplitHostPort(r.Addr); err == nil {
			c.ServerName = host
		}
	}
	return c, err
}

// RpcServerConf is rpc_server_conf: the server's own gRPC endpoint.
type RpcServerConf struct {
	// ListenOn is host:port; empty disables the listener.
	ListenOn string `json:"listen_on,optional"`
}

// Target is one gRPC service a server forwards to.
type Target struct {
	// Endpoint is the target's address, host:port or any grpc-go target
	// such as dns:///svc:8081.
	Endpoint string `json:"endpoint"`
	// Timeout caps the time the server gives one call to the target, such
	// as "30s"; the caller's remaining deadline applies when shorter.
	Timeout string `json:"timeout,default=30s"`
	// Settings: max_retries (retries of UNAVAILABLE with backoff, default 0).
	Settings map[string]any `json:"settings,optional"`
}

// PluginConf is one entry of plugins. In YAML enabled defaults to true; in
// Go, set Enabled: true (the zero value leaves the plugin off).
type PluginConf struct {
	Name     string         `json:"name"`
	Enabled  bool           `json:"enabled,default=true"`
	Settings map[string]any `json:"settings,optional"`
}

// SetDefaults fills the zero fields of a config built in Go with the same
// defaults the YAML loader applies (except Port: see Config.Port).
func (c *Config) SetDefaults() {
	if c.Name == "" {
		c.Name = DefaultServerName
	}
	if c.Host == "" {
		c.Host = DefaultAdminHost
	}
	if c.RpcBus.Type == "" {
		c.RpcBus.Type = "kafka"
	}
	if c.Topics.Request == "" {
		c.Topics.Request = DefaultRequestTopic
	}
	if c.Topics.Response == "" {
		c.Topics.Response = DefaultResponseTopic
	}
	for name, t := range c.Targets {
		if t.Timeout == "" {
			t.Timeout = DefaultTargetTimeout
			c.Targets[name] = t
		}
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.MaxRequestAge == 0 {
		c.MaxRequestAge = DefaultMaxRequestAge
	}
	if c.Dedup.Store == "" {
		c.Dedup.Store = "memory"
	}
	if c.Dedup.Size == 0 {
		c.Dedup.Size = DefaultDedupSize
	}
	if c.Dedup.TTL == 0 {
		c.Dedup.TTL = DefaultDedupTTL
	}
	if c.Dedup.MaxBytes == 0 {
		c.Dedup.MaxBytes = DefaultDedupMaxBytes
	}
	if c.ReplyTimeout == 0 {
		c.ReplyTimeout = DefaultReplyTimeout
	}
	if c.DeadLetterTimeout == 0 {
		c.DeadLetterTimeout = DefaultDeadLetterTimeout
	}
	if c.MaxMetadataBytes == 0 {
		c.MaxMetadataBytes = DefaultMaxMetadataBytes
	}
	if c.MaxIDBytes == 0 {
		c.MaxIDBytes = DefaultMaxIDBytes
	}
	if c.MaxInFlightBytes == 0 {
		c.MaxInFlightBytes = DefaultMaxInFlightBytes
	}
	if c.Dedup.Redis.Addr == "" {
		c.Dedup.Redis.Addr = "127.0.0.1:6379"
	}
	if c.Dedup.Redis.Prefix == "" {
		c.Dedup.Redis.Prefix = "vrpc:dedup:"
	}
	c.Security.setDefaults()
}

// Validate reports every invalid value, naming its YAML key. Load calls
// it after loading.
func (c *Config) Validate() error {
	errs := []error{
		rpcbus.CheckName("name", c.Name),
		rpcbus.CheckName("topics.request", c.Topics.Request),
		rpcbus.CheckName("topics.response", c.Topics.Response),
	}
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Port > 65535 {
		bad("port %d: must be at most 65535", c.Port)
	}
	if c.RpcServerConf.ListenOn != "" {
		if _, _, err := net.SplitHostPort(c.RpcServerConf.ListenOn); err != nil {
			bad("rpc_server_conf.listen_on %q: want host:port (%v)", c.RpcServerConf.ListenOn, err)
		}
	}
	if len(c.Targets) == 0 {
		bad("targets: none configured; add at least one, e.g. targets: {demo: {endpoint: localhost:8081}}")
	}
	names := make([]string, 0, len(c.Targets))
	for name := range c.Targets {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t := c.Targets[name]
		errs = append(errs, rpcbus.CheckName("targets."+name, name))
		if t.Endpoint == "" {
			bad("targets.%s.endpoint: missing; set the target's gRPC address, e.g. localhost:8081", name)
		}
		if t.Timeout != "" {
			if d, err := time.ParseDuration(t.Timeout); err != nil || d <= 0 {
				bad("targets.%s.timeout %q: want a positive duration such as 30s", name, t.Timeout)
			}
		}
		if _, err := ParseTargetSettings(name, t.Settings); err != nil {
			errs = append(errs, err)
		}
	}
	for i, p := range c.Plugins {
		if p.Name == "" {
			bad("plugins[%d].name: missing", i)
		}
	}
	if c.MaxInFlight < 0 {
		bad("max_in_flight %d: must be positive", c.MaxInFlight)
	}
	if c.MaxMessageSize < 0 {
		bad("max_message_size %d: must be positive", c.MaxMessageSize)
	}
	if c.DrainTimeout < 0 {
		bad("drain_timeout %v: must be positive", c.DrainTimeout)
	}
	if c.ReplyTimeout < 0 {
		bad("reply_timeout %v: must be positive, such as 5s", c.ReplyTimeout)
	}
	if c.DeadLetterTimeout < 0 {
		bad("dead_letter_timeout %v: must be positive, such as 10s", c.DeadLetterTimeout)
	}
	if c.MaxMetadataBytes < 0 {
		bad("max_metadata_bytes %d: must be positive, such as 65536", c.MaxMetadataBytes)
	}
	if c.MaxIDBytes < 0 || (c.MaxIDBytes > 0 && c.MaxIDBytes < MinMaxIDBytes) {
		bad("max_id_bytes %d: must be at least %d (default %d)", c.MaxIDBytes, MinMaxIDBytes, DefaultMaxIDBytes)
	}
	if c.MaxInFlightBytes < 0 {
		bad("max_in_flight_bytes %d: must be positive, such as 67108864 (64 MiB)", c.MaxInFlightBytes)
	} else if c.MaxInFlightBytes > 0 && c.MaxMessageSize > 0 && c.MaxInFlightBytes < c.MaxMessageSize {
		bad("max_in_flight_bytes %d: must be at least max_message_size (%d), or no request of the largest size could be served", c.MaxInFlightBytes, c.MaxMessageSize)
	}
	if c.MaxInFlightPerClient < 0 {
		bad("max_in_flight_per_client %d: must be positive, or 0 for no limit", c.MaxInFlightPerClient)
	} else if c.MaxInFlight > 0 && c.MaxInFlightPerClient > c.MaxInFlight {
		bad("max_in_flight_per_client %d: must be at most max_in_flight (%d)", c.MaxInFlightPerClient, c.MaxInFlight)
	}
	if c.Dedup.MaxBytes < 0 {
		bad("dedup.max_bytes %d: must be positive, such as 67108864 (64 MiB)", c.Dedup.MaxBytes)
	}
	switch c.Dedup.Store {
	case "", "memory", "redis", "none":
	default:
		bad("dedup.store %q: want memory, redis or none", c.Dedup.Store)
	}
	if c.Dedup.Size < 0 {
		bad("dedup.size %d: must be positive", c.Dedup.Size)
	}
	if c.Dedup.TTL < 0 {
		bad("dedup.ttl %v: must be positive", c.Dedup.TTL)
	}
	errs = append(errs, c.Security.validate(c.Dedup.Store)...)
	if c.Dedup.Store == "redis" {
		if _, _, err := net.SplitHostPort(c.Dedup.Redis.Addr); err != nil {
			bad("dedup.redis.addr %q: want host:port (%v)", rpcbus.RedactAddress(c.Dedup.Redis.Addr), err)
		}
		if _, err := c.Dedup.Redis.TLSConfig(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
