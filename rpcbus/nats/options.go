package nats

import (
	"crypto/tls"
	"math/rand/v2"
	"os"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nextpkg/vrpc/internal/settings"
)

// Defaults and bounds of rpc_bus.settings. See the package documentation.
const (
	defaultServer         = "nats://127.0.0.1:4222"
	defaultConnectTimeout = 5 * time.Second
	defaultReconnectWait  = 2 * time.Second
	defaultAckWait        = 30 * time.Second
	defaultMaxAge         = 24 * time.Hour

	// firstReconnectWait is the first step of the reconnect backoff, which
	// doubles up to reconnect_wait.
	firstReconnectWait = 50 * time.Millisecond
	// pingInterval and maxPingsOut notice a dead TCP connection within a
	// minute (the third unanswered ping), where nats.go's defaults take six.
	pingInterval = 20 * time.Second
	maxPingsOut  = 2
)

// options are the decoded rpc_bus.settings of type nats.
type options struct {
	Token          string            `json:"token"`
	User           string            `json:"user"`
	Password       string            `json:"password"`
	CredsFile      string            `json:"creds_file"`
	ConnectTimeout settings.Duration `json:"connect_timeout"`
	ReconnectWait  settings.Duration `json:"reconnect_wait"`
	AckWait        settings.Duration `json:"ack_wait"`
	MaxAge         settings.Duration `json:"max_age"`
	MaxBytes       int64             `json:"max_bytes"`
	Replicas       int               `json:"replicas"`
	Storage        string            `json:"storage"`

	settings.TLS

	tls *tls.Config // built from the tls_* keys by validate; nil without them
}

func defaultOptions() options {
	return options{
		ConnectTimeout: settings.Duration(defaultConnectTimeout),
		ReconnectWait:  settings.Duration(defaultReconnectWait),
		AckWait:        settings.Duration(defaultAckWait),
		MaxAge:         settings.Duration(defaultMaxAge),
		MaxBytes:       -1,
		Replicas:       1,
		Storage:        "file",
	}
}

// decodeOptions decodes m strictly: an unknown key, a value of the wrong
// type or out of range is an error naming the key.
func decodeOptions(m map[string]any) (options, error) {
	o := defaultOptions()
	if ke := settings.DecodeKeys(m, &o); ke != nil {
		return o, badSetting(ke.Key, "%v", ke.Err)
	}
	return o, o.validate()
}

func (o *options) validate() error {
	switch {
	case o.Token != "" && (o.User != "" || o.Password != ""):
		return badSetting("token", "cannot be combined with user/password: the server takes one of them")
	case o.CredsFile != "" && (o.Token != "" || o.User != "" || o.Password != ""):
		return badSetting("creds_file", "cannot be combined with token or user/password: the credentials file authenticates on its own")
	case o.Password != "" && o.User == "":
		return badSetting("password", "is set without user")
	}
	if o.CredsFile != "" {
		if _, err := os.ReadFile(o.CredsFile); err != nil {
			return badSetting("creds_file", "cannot be read: %v", err)
		}
	}
	// The files are read now, so that a wrong path is an error naming its
	// key at start-up rather than a failed connection.
	c, err := o.TLS.Config()
	if ke, ok := err.(*settings.KeyError); ok {
		return badSetting(ke.Key, "%v", ke.Err)
	}
	o.tls = c
	for _, d := range []struct {
		key      string
		v        settings.Duration
		min, max time.Duration
	}{
		{"connect_timeout", o.ConnectTimeout, 10 * time.Millisecond, time.Hour},
		{"reconnect_wait", o.ReconnectWait, 10 * time.Millisecond, time.Hour},
		// Below a second, deliveries of a busy member would expire between
		// two in-progress signals (see the package documentation).
		{"ack_wait", o.AckWait, time.Second, 24 * time.Hour},
	} {
		if v := time.Duration(d.v); v < d.min || v > d.max {
			return badSetting(d.key, "%v is out of range (want %v to %v)", v, d.min, d.max)
		}
	}
	if v := time.Duration(o.MaxAge); v != 0 && v < time.Second {
		return badSetting("max_age", "%v is out of range (want 0 for no limit, or at least 1s)", v)
	}
	if o.MaxBytes == 0 || o.MaxBytes < -1 {
		return badSetting("max_bytes", "%d is out of range (want -1 for no limit, or a positive number of bytes)", o.MaxBytes)
	}
	if o.Replicas < 1 || o.Replicas > 5 {
		return badSetting("replicas", "%d is out of range (want 1 to 5)", o.Replicas)
	}
	switch o.Storage {
	case "file", "memory":
	default:
		return badSetting("storage", "%q is not supported (want file or memory)", o.Storage)
	}
	return nil
}

// connectOptions configures the bus's connection; handlers are the bus's
// connection event callbacks.
func (o *options) connectOptions(handlers ...natsgo.Option) []natsgo.Option {
	maxWait := time.Duration(o.ReconnectWait)
	opts := []natsgo.Option{
		natsgo.Name("vrpc"),
		natsgo.Timeout(time.Duration(o.ConnectTimeout)),
		natsgo.MaxReconnects(-1), // connection loss is survived, however long
		natsgo.CustomReconnectDelay(func(attempts int) time.Duration {
			// Doubling from 50ms up to reconnect_wait, with up to 50%
			// jitter so that many clients do not reconnect in step.
			d := firstReconnectWait << min(max(attempts-1, 0), 20)
			d = min(d, maxWait)
			return d/2 + rand.N(d/2+1)
		}),
		natsgo.PingInterval(pingInterval),
		natsgo.MaxPingsOutstanding(maxPingsOut),
	}
	switch {
	case o.Token != "":
		opts = append(opts, natsgo.Token(o.Token))
	case o.User != "":
		opts = append(opts, natsgo.UserInfo(o.User, o.Password))
	case o.CredsFile != "":
		opts = append(opts, natsgo.UserCredentials(o.CredsFile))
	}
	if o.tls != nil {
		opts = append(opts, natsgo.Secure(o.tls))
	}
	return append(opts, handlers...)
}

// streamConfig is the configuration of the stream that carries topic.
func (o *options) streamConfig(topic string) jetstream.StreamConfig {
	storage := jetstream.FileStorage
	if o.Storage == "memory" {
		storage = jetstream.MemoryStorage
	}
	return jetstream.StreamConfig{
		Name:        streamName(topic),
		Description: "vRPC topic " + topic,
		Subjects:    []string{topic},
		// Interest retention drops a message once every group has
		// acknowledged it; see "Retention" in the package documentation.
		Retention: jetstream.InterestPolicy,
		Discard:   jetstream.DiscardOld,
		MaxAge:    time.Duration(o.MaxAge),
		MaxBytes:  o.MaxBytes,
		MaxMsgs:   -1,
		Storage:   storage,
		Replicas:  o.Replicas,
	}
}
