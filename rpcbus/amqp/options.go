package amqp

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/nextpkg/vrpc/internal/settings"
	"github.com/nextpkg/vrpc/rpcbus"
)

// Defaults and bounds of rpc_bus.settings. See the package documentation.
const (
	defaultHost            = "127.0.0.1"
	defaultPort            = "5672"
	defaultTLSPort         = "5671"
	defaultExchange        = "vrpc"
	defaultMaxMessageBytes = 16 << 20
	minMaxMessageBytes     = 1 << 10
	// maxMaxMessageBytes is RabbitMQ's own ceiling for max_message_size.
	maxMaxMessageBytes = 512 << 20
	// maxPrefetch is the largest prefetch count basic.qos can carry (a
	// 16-bit field).
	maxPrefetch = 65535
	// maxNameBytes is the AMQP limit on queue and exchange names and
	// routing keys (short strings).
	maxNameBytes = 255
)

// options are the decoded rpc_bus.settings of type amqp.
type options struct {
	Vhost            string            `json:"vhost"`
	Username         string            `json:"username"`
	Password         string            `json:"password"`
	AuthMechanism    string            `json:"auth_mechanism"`
	Exchange         string            `json:"exchange"`
	QueueType        string            `json:"queue_type"`
	QueueExpires     settings.Duration `json:"queue_expires"`
	Persistent       bool              `json:"persistent"`
	Prefetch         int               `json:"prefetch"`
	MaxMessageBytes  int               `json:"max_message_bytes"`
	Heartbeat        settings.Duration `json:"heartbeat"`
	DialTimeout      settings.Duration `json:"dial_timeout"`
	ConfirmTimeout   settings.Duration `json:"confirm_timeout"`
	ReconnectBackoff settings.Duration `json:"reconnect_backoff"`
	ConnectionName   string            `json:"connection_name"`

	settings.TLS

	tls *tls.Config // built from the tls_* keys; nil for plain TCP
}

func defaultOptions() options {
	return options{
		Vhost:            "/",
		Username:         "guest",
		Password:         "guest",
		AuthMechanism:    "plain",
		Exchange:         defaultExchange,
		QueueType:        "quorum",
		Persistent:       true,
		MaxMessageBytes:  defaultMaxMessageBytes,
		Heartbeat:        settings.Duration(10 * time.Second),
		DialTimeout:      settings.Duration(10 * time.Second),
		ConfirmTimeout:   settings.Duration(30 * time.Second),
		ReconnectBackoff: settings.Duration(5 * time.Second),
		ConnectionName:   "vrpc",
	}
}

// decodeOptions decodes m strictly into the amqp options: an unknown key,
// a value of the wrong type or out of range is an error naming the key.
func decodeOptions(m map[string]any) (options, error) {
	o := defaultOptions()
	if ke := settings.DecodeKeys(m, &o); ke != nil {
		return o, badSetting(ke.Key, "%v", ke.Err)
	}
	return o, o.validate()
}

func (o *options) validate() error {
	switch o.QueueType {
	case "quorum", "classic":
	default:
		return badSetting("queue_type", "%q is not supported (want quorum, or classic for brokers without quorum queues)", o.QueueType)
	}
	switch {
	case o.Exchange == "":
		return badSetting("exchange", "must not be empty")
	case len(o.Exchange) > maxNameBytes:
		return badSetting("exchange", "%q is longer than %d bytes", o.Exchange, maxNameBytes)
	case strings.HasPrefix(o.Exchange, "amq."):
		return badSetting("exchange", "%q: names starting with amq. are reserved by the broker", o.Exchange)
	}
	if o.Vhost == "" {
		return badSetting("vhost", `must not be empty (the default virtual host is "/")`)
	}
	if o.Username == "" {
		return badSetting("username", "must not be empty")
	}
	if o.Prefetch < 0 || o.Prefetch > maxPrefetch {
		return badSetting("prefetch", "%d is out of range (want 0 for the subscription's MaxInFlight, or 1 to %d)", o.Prefetch, maxPrefetch)
	}
	if o.MaxMessageBytes < minMaxMessageBytes || o.MaxMessageBytes > maxMaxMessageBytes {
		return badSetting("max_message_bytes", "%d is out of range (want %d to %d bytes, and at most the broker's max_message_size)",
			o.MaxMessageBytes, minMaxMessageBytes, maxMaxMessageBytes)
	}
	if e := time.Duration(o.QueueExpires); e != 0 && (e < time.Second || e > 365*24*time.Hour) {
		return badSetting("queue_expires", "%v is out of range (want 0 for never, or 1s to 8760h)", e)
	}
	for _, d := range []struct {
		key      string
		v        settings.Duration
		min, max time.Duration
	}{
		{"heartbeat", o.Heartbeat, time.Second, time.Hour},
		{"dial_timeout", o.DialTimeout, 10 * time.Millisecond, 10 * time.Minute},
		{"confirm_timeout", o.ConfirmTimeout, 10 * time.Millisecond, time.Hour},
		{"reconnect_backoff", o.ReconnectBackoff, 10 * time.Millisecond, 10 * time.Minute},
	} {
		if v := time.Duration(d.v); v < d.min || v > d.max {
			return badSetting(d.key, "%v is out of range (want %v to %v)", v, d.min, d.max)
		}
	}
	switch o.AuthMechanism {
	case "plain":
	case "external":
		if o.CertFile == "" {
			return badSetting("auth_mechanism", "external authenticates with the client certificate: set tls_cert_file and tls_key_file")
		}
	default:
		return badSetting("auth_mechanism", "%q is not supported (want plain, or external for a client certificate)", o.AuthMechanism)
	}
	// The files are read now, so that a missing or bad one is reported at
	// start-up with its key.
	c, err := o.TLS.Config()
	if ke, ok := err.(*settings.KeyError); ok {
		return badSetting(ke.Key, "%v", ke.Err)
	}
	o.tls = c
	return nil
}

// useTLS reports whether connections use TLS: tls is set, or any other
// tls_* key is.
func (o *options) useTLS() bool { return o.Enabled() }

// broker is one entry of rpc_bus.brokers, as dialled.
type broker struct {
	addr string // host:port, without credentials
	tls  bool
	// user and password, when the entry is a URL with user information,
	// replace the username and password settings for this broker.
	user, password string
	hasUser        bool
	// vhost, when not empty, replaces the vhost setting for this broker.
	vhost string
}

// brokerForms says what rpc_bus.brokers entries may be.
const brokerForms = "want host:port, or amqp://[user:password@]host[:port][/vhost], or amqps://... for TLS"

// parseBrokers checks rpc_bus.brokers. An entry is host:port (the port
// defaults to 5672, or 5671 with TLS) or an AMQP URI,
// amqp://user:password@host:port/vhost, or amqps:// for TLS: its user,
// password and vhost override the settings for that broker. tls is on for
// every broker when useTLS (a tls_* setting), else for amqps:// ones.
func parseBrokers(brokers []string, useTLS bool) ([]broker, error) {
	if len(brokers) == 0 {
		brokers = []string{defaultHost}
	}
	out := make([]broker, 0, len(brokers))
	for i, b := range brokers {
		key := "rpc_bus.brokers[" + strconv.Itoa(i) + "]"
		bad := func(format string, args ...any) error {
			return &SettingError{Key: key, Problem: fmt.Sprintf("%q: ", rpcbus.RedactAddress(b)) + fmt.Sprintf(format, args...)}
		}
		br := broker{tls: useTLS}
		var host, p string
		if scheme, _, ok := strings.Cut(b, "://"); ok {
			switch strings.ToLower(scheme) {
			case "amqp":
			case "amqps":
				br.tls = true
			default:
				return nil, bad("scheme %q is not supported (%s)", scheme, brokerForms)
			}
			u, err := url.Parse(b)
			if err != nil {
				return nil, bad("not a URL (%s)", brokerForms)
			}
			if u.RawQuery != "" || u.Fragment != "" {
				return nil, bad("URI parameters are not supported: put them in rpc_bus.settings (%s)", brokerForms)
			}
			if u.User != nil {
				br.hasUser = true
				br.user = u.User.Username()
				br.password, _ = u.User.Password()
				if br.user == "" {
					return nil, bad("empty user name (%s)", brokerForms)
				}
			}
			if len(u.Path) > 1 {
				br.vhost = u.Path[1:]
			}
			host, p = u.Hostname(), u.Port()
		} else {
			if strings.ContainsAny(b, "@/") {
				return nil, bad("%s", brokerForms)
			}
			var err error
			host, p, err = net.SplitHostPort(b)
			if err != nil {
				if strings.Count(b, ":") > 1 && !strings.HasPrefix(b, "[") {
					return nil, bad("write an IPv6 address as [addr]:port")
				}
				host, p = b, "" // no port
			}
		}
		if p == "" {
			p = defaultPort
			if br.tls {
				p = defaultTLSPort
			}
		}
		if host == "" {
			return nil, bad("no host (%s)", brokerForms)
		}
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, bad("bad port %q (%s)", p, brokerForms)
		}
		br.addr = net.JoinHostPort(host, p)
		out = append(out, br)
	}
	return out, nil
}

// amqpConfig is the connection configuration of a dial to br.
func (o *options) amqpConfig(role string, br broker) amqp.Config {
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName(o.ConnectionName + " (" + role + ")")
	// A fresh PlainAuth each time: the library may clear credentials it
	// was given once the handshake is done.
	user, password := o.Username, o.Password
	if br.hasUser {
		user, password = br.user, br.password
	}
	vhost := o.Vhost
	if br.vhost != "" {
		vhost = br.vhost
	}
	var auth amqp.Authentication = &amqp.PlainAuth{Username: user, Password: password}
	if o.AuthMechanism == "external" {
		auth = &amqp.ExternalAuth{}
	}
	c := amqp.Config{
		SASL:       []amqp.Authentication{auth},
		Vhost:      vhost,
		Heartbeat:  time.Duration(o.Heartbeat),
		Properties: props,
		Locale:     "en_US",
	}
	if br.tls && o.tls != nil {
		c.TLSClientConfig = o.tls.Clone()
	}
	return c
}

// queueArgs are the arguments of the durable queue of a topic and group.
func (o *options) queueArgs() amqp.Table {
	args := amqp.Table{amqp.QueueTypeArg: o.QueueType}
	if e := time.Duration(o.QueueExpires); e > 0 {
		args[amqp.QueueTTLArg] = e.Milliseconds()
	}
	return args
}

// contains reports whether list holds s.
func contains(list []string, s string) bool { return slices.Contains(list, s) }
