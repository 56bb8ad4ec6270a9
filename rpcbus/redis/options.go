package redis

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/nextpkg/vrpc/internal/settings"
	"github.com/nextpkg/vrpc/rpcbus"
)

// Defaults and bounds of rpc_bus.settings. See the package documentation.
const (
	defaultBroker          = "127.0.0.1:6379"
	defaultKeyPrefix       = "vrpc:"
	defaultMaxLen          = 100000
	defaultMaxMessageBytes = 5 << 20
	minMaxMessageBytes     = 1 << 10
	// maxMaxMessageBytes is Redis's own default proto-max-bulk-len.
	maxMaxMessageBytes = 512 << 20
	maxMaxLen          = 1 << 40
	maxPoolSize        = 10000
)

// options are the decoded rpc_bus.settings of type redis.
type options struct {
	KeyPrefix       string            `json:"key_prefix"`
	DB              int               `json:"db"`
	Username        string            `json:"username"`
	Password        string            `json:"password"`
	MaxLen          int64             `json:"max_len"`
	MaxMessageBytes int               `json:"max_message_bytes"`
	ClaimIdle       settings.Duration `json:"claim_idle"`
	InboxTTL        settings.Duration `json:"inbox_ttl"`
	Block           settings.Duration `json:"block"`
	DialTimeout     settings.Duration `json:"dial_timeout"`
	PoolSize        int               `json:"pool_size"`

	settings.TLS

	tlsConfig *tls.Config // built from the tls* keys by validate
}

func defaultOptions() options {
	return options{
		KeyPrefix:       defaultKeyPrefix,
		MaxLen:          defaultMaxLen,
		MaxMessageBytes: defaultMaxMessageBytes,
		ClaimIdle:       settings.Duration(30 * time.Second),
		InboxTTL:        settings.Duration(time.Minute),
		Block:           settings.Duration(time.Second),
		DialTimeout:     settings.Duration(5 * time.Second),
		PoolSize:        defaultPoolSize(),
	}
}

// defaultPoolSize is go-redis's own default, ten connections per CPU:
// plenty, as Publish and acknowledgements share a few pipelines.
func defaultPoolSize() int { return 10 * runtime.GOMAXPROCS(0) }

// decodeOptions decodes m strictly: an unknown key or a value of the wrong
// type is an error naming the key.
func decodeOptions(m map[string]any) (options, error) {
	o := defaultOptions()
	if ke := settings.DecodeKeys(m, &o); ke != nil {
		return o, badSetting(ke.Key, "%v", ke.Err)
	}
	return o, o.validate()
}

func (o *options) validate() error {
	if strings.ContainsFunc(o.KeyPrefix, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return badSetting("key_prefix", "%q contains spaces or control characters", o.KeyPrefix)
	}
	if o.DB < 0 {
		return badSetting("db", "%d is negative (want 0 or more)", o.DB)
	}
	if o.MaxLen < 1 || o.MaxLen > maxMaxLen {
		return badSetting("max_len", "%d is out of range (want 1 to %d entries per stream)", o.MaxLen, int64(maxMaxLen))
	}
	if o.MaxMessageBytes < minMaxMessageBytes || o.MaxMessageBytes > maxMaxMessageBytes {
		return badSetting("max_message_bytes", "%d is out of range (want %d to %d bytes)",
			o.MaxMessageBytes, minMaxMessageBytes, maxMaxMessageBytes)
	}
	if o.PoolSize < 1 || o.PoolSize > maxPoolSize {
		return badSetting("pool_size", "%d is out of range (want 1 to %d)", o.PoolSize, maxPoolSize)
	}
	for _, d := range []struct {
		key      string
		v        settings.Duration
		min, max time.Duration
	}{
		{"claim_idle", o.ClaimIdle, 100 * time.Millisecond, 24 * time.Hour},
		{"inbox_ttl", o.InboxTTL, time.Second, 24 * time.Hour},
		{"block", o.Block, time.Millisecond, time.Minute},
		{"dial_timeout", o.DialTimeout, time.Millisecond, time.Hour},
	} {
		if v := time.Duration(d.v); v < d.min || v > d.max {
			return badSetting(d.key, "%v is out of range (want %v to %v)", v, d.min, d.max)
		}
	}
	// The files are read now, so that a wrong path is an error naming its
	// key at start-up rather than a failed connection.
	c, err := o.TLS.Config()
	if ke, ok := err.(*settings.KeyError); ok {
		return badSetting(ke.Key, "%v", ke.Err)
	}
	o.tlsConfig = c
	return nil
}

// brokerAddr returns the one server address of cfg.Brokers as host:port.
// It is host:port, or a URL in go-redis's form,
// redis://[user:password@]host[:port][/db], or rediss:// for TLS: the
// URL's user, password and database override the username, password and
// db settings, and rediss:// turns TLS on (with the tls_* settings, if
// any). The address returned carries no credentials.
func brokerAddr(brokers []string, o *options) (string, error) {
	switch len(brokers) {
	case 0:
		return defaultBroker, nil
	case 1:
	default:
		return "", fmt.Errorf("rpc_bus.brokers %q: the redis bus takes one address (Redis Cluster and Sentinel are not supported)", rpcbus.RedactAddresses(brokers))
	}
	b := brokers[0]
	const forms = "want host:port, redis://[user:password@]host[:port][/db] or rediss://... for TLS"
	if !strings.Contains(b, "://") {
		if _, _, err := net.SplitHostPort(b); err != nil || strings.Contains(b, "@") {
			return "", fmt.Errorf("rpc_bus.brokers[0] %q: %s", rpcbus.RedactAddress(b), forms)
		}
		return b, nil
	}
	scheme, _, _ := strings.Cut(b, "://")
	switch strings.ToLower(scheme) {
	case "redis", "rediss":
	default:
		return "", fmt.Errorf("rpc_bus.brokers[0] %q: scheme %q is not supported (%s)", rpcbus.RedactAddress(b), scheme, forms)
	}
	pu, err := url.Parse(b)
	if err == nil && (pu.RawQuery != "" || pu.Fragment != "") {
		return "", fmt.Errorf("rpc_bus.brokers[0] %q: URL parameters are not supported: put them in rpc_bus.settings", rpcbus.RedactAddress(b))
	}
	u, err := goredis.ParseURL(strings.ToLower(scheme) + b[len(scheme):])
	if err != nil {
		return "", fmt.Errorf("rpc_bus.brokers[0] %q: %v (%s)", rpcbus.RedactAddress(b), rpcbus.RedactError(err, brokers), forms)
	}
	if u.Username != "" {
		o.Username = u.Username
	}
	if u.Password != "" {
		o.Password = u.Password
	}
	if pu != nil && strings.Trim(pu.Path, "/") != "" {
		o.DB = u.DB
	}
	if u.TLSConfig != nil && o.tlsConfig == nil {
		// rediss:// without tls_* keys: the defaults, which cannot fail.
		o.tlsConfig, _ = (&settings.TLS{TLS: true}).Config()
	}
	return u.Addr, nil
}

// clientOptions returns the go-redis options of the bus's shared client
// (reader false) or of a subscription's or inbox's own connection for
// blocking reads (reader true), whose CLIENT ID is kept in connID so that
// Close can unblock it.
func (o *options) clientOptions(addr string, reader bool, connID *atomic.Int64) *goredis.Options {
	opts := &goredis.Options{
		Addr:                  addr,
		Username:              o.Username,
		Password:              o.Password,
		DB:                    o.DB,
		DialTimeout:           time.Duration(o.DialTimeout),
		ContextTimeoutEnabled: true,
		PoolSize:              o.PoolSize,
		// The bus needs none of these, and they cost a handshake or a
		// goroutine per connection.
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
	if o.tlsConfig != nil {
		opts.TLSConfig = o.tlsConfig.Clone()
		if opts.TLSConfig.ServerName == "" {
			host, _, _ := net.SplitHostPort(addr)
			opts.TLSConfig.ServerName = host
		}
	}
	if reader {
		opts.PoolSize = 1
		opts.PipelinePoolSize = -1
		// The read loops retry with their own backoff; a blocked read retried
		// by go-redis could not be unblocked.
		opts.MaxRetries = -1
		opts.OnConnect = func(ctx context.Context, cn *goredis.Conn) error {
			if id, err := cn.ClientID(ctx).Result(); err == nil {
				connID.Store(id)
			}
			return nil
		}
	}
	return opts
}

// key is the Redis key of topic.
func (o *options) key(topic string) string { return o.KeyPrefix + topic }
