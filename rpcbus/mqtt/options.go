package mqtt

import (
	"crypto/tls"
	"fmt"
	"math"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/nextpkg/vrpc/internal/settings"
	"github.com/nextpkg/vrpc/rpcbus"
)

// Defaults and bounds of rpc_bus.settings. See the package documentation.
const (
	defaultBroker          = "127.0.0.1:1883"
	defaultClientIDPrefix  = "vrpc-"
	defaultMaxMessageBytes = 5 << 20
	minMaxMessageBytes     = 1 << 10
	// maxMaxMessageBytes leaves room for the topic, properties and fixed
	// header inside MQTT's largest packet (256 MiB).
	maxMaxMessageBytes = 256<<20 - 1<<20
	// packetOverhead is what a PUBLISH adds to its payload, at most, with
	// the topics and headers vRPC sends; it is added to max_message_bytes
	// for the Maximum Packet Size this client announces.
	packetOverhead = 64 << 10
	// maxClientIDPrefix keeps client ids within what brokers accept: the
	// prefix, a random part and, for group members, nothing more.
	maxClientIDPrefix = 64
)

// options are the decoded rpc_bus.settings of type mqtt.
type options struct {
	ClientIDPrefix      string            `json:"client_id_prefix"`
	Username            string            `json:"username"`
	Password            string            `json:"password"`
	QoS                 int               `json:"qos"`
	SessionExpiry       settings.Duration `json:"session_expiry"`
	WillDelay           settings.Duration `json:"will_delay"`
	Keepalive           settings.Duration `json:"keepalive"`
	ConnectTimeout      settings.Duration `json:"connect_timeout"`
	ReconnectBackoffMax settings.Duration `json:"reconnect_backoff_max"`
	MaxMessageBytes     int               `json:"max_message_bytes"`

	settings.TLS

	tlsConfig *tls.Config // built by validate when TLS is on
}

func defaultOptions() options {
	return options{
		ClientIDPrefix:      defaultClientIDPrefix,
		QoS:                 1,
		SessionExpiry:       settings.Duration(5 * time.Minute),
		WillDelay:           settings.Duration(5 * time.Second),
		Keepalive:           settings.Duration(30 * time.Second),
		ConnectTimeout:      settings.Duration(10 * time.Second),
		ReconnectBackoffMax: settings.Duration(5 * time.Second),
		MaxMessageBytes:     defaultMaxMessageBytes,
	}
}

// decodeOptions decodes m strictly into the options and validates them.
func decodeOptions(m map[string]any) (options, error) {
	o := defaultOptions()
	if ke := settings.DecodeKeys(m, &o); ke != nil {
		return o, badSetting(ke.Key, "%v", ke.Err)
	}
	return o, o.validate()
}

func (o *options) validate() error {
	if len(o.ClientIDPrefix) > maxClientIDPrefix || strings.ContainsAny(o.ClientIDPrefix, "/+#\x00") {
		return badSetting("client_id_prefix", "%q: use at most %d characters, none of '/', '+', '#'", o.ClientIDPrefix, maxClientIDPrefix)
	}
	if o.QoS != 1 {
		return badSetting("qos", "%d is not supported (want 1: a request is acknowledged once its reply is published, "+
			"which is QoS 1; QoS 0 would lose requests and QoS 2's exactly-once needs client state that outlives the process)", o.QoS)
	}
	if o.Password != "" && o.Username == "" {
		return badSetting("password", "is set without username (MQTT sends a password only with a user name)")
	}
	for _, d := range []struct {
		key      string
		v        settings.Duration
		min, max time.Duration
	}{
		{"session_expiry", o.SessionExpiry, time.Second, math.MaxUint32 * time.Second},
		{"will_delay", o.WillDelay, 0, math.MaxUint32 * time.Second},
		{"keepalive", o.Keepalive, time.Second, math.MaxUint16 * time.Second},
		{"connect_timeout", o.ConnectTimeout, time.Millisecond, time.Hour},
		{"reconnect_backoff_max", o.ReconnectBackoffMax, 10 * time.Millisecond, time.Hour},
	} {
		if v := time.Duration(d.v); v < d.min || v > d.max {
			return badSetting(d.key, "%v is out of range (want %v to %v)", v, d.min, d.max)
		}
	}
	if time.Duration(o.SessionExpiry)%time.Second != 0 || time.Duration(o.WillDelay)%time.Second != 0 || time.Duration(o.Keepalive)%time.Second != 0 {
		key := "session_expiry"
		switch {
		case time.Duration(o.WillDelay)%time.Second != 0:
			key = "will_delay"
		case time.Duration(o.Keepalive)%time.Second != 0:
			key = "keepalive"
		}
		return badSetting(key, "must be whole seconds (MQTT carries it in seconds)")
	}
	if o.WillDelay > o.SessionExpiry {
		return badSetting("will_delay", "%v is longer than session_expiry %v: the orphaned session would expire before its members are told",
			time.Duration(o.WillDelay), time.Duration(o.SessionExpiry))
	}
	if o.MaxMessageBytes < minMaxMessageBytes || o.MaxMessageBytes > maxMaxMessageBytes {
		return badSetting("max_message_bytes", "%d is out of range (want %d to %d bytes)", o.MaxMessageBytes, minMaxMessageBytes, maxMaxMessageBytes)
	}
	// The files are read once, at start-up, so that a wrong path is an
	// error naming its key rather than a failed dial.
	c, err := o.TLS.Config()
	if ke, ok := err.(*settings.KeyError); ok {
		return badSetting(ke.Key, "%v", ke.Err)
	}
	o.tlsConfig = c
	return nil
}

// broker is one entry of rpc_bus.brokers: host:port, optionally with a
// scheme (tcp://, mqtt://, ssl://, tls://, mqtts://) that chooses TLS and
// user information (user:password@) that replaces the username and
// password settings for this broker.
type broker struct {
	addr string // host:port, without credentials
	tls  bool
	// user and password, when hasUser, are the URL's.
	user, password string
	hasUser        bool
}

// brokerForms says what rpc_bus.brokers entries may be.
const brokerForms = "want host:port, or mqtt://[user:password@]host:port (also tcp://), or mqtts://... (also ssl://, tls://) for TLS"

func parseBrokers(list []string, o *options) ([]broker, error) {
	if len(list) == 0 {
		list = []string{defaultBroker}
	}
	out := make([]broker, 0, len(list))
	for i, s := range list {
		b := broker{addr: s, tls: o.Enabled()}
		bad := func(format string, args ...any) error {
			return fmt.Errorf("rpc_bus.brokers[%d] %q: %s", i, rpcbus.RedactAddress(s), fmt.Sprintf(format, args...))
		}
		if scheme, _, ok := strings.Cut(s, "://"); ok {
			switch strings.ToLower(scheme) {
			case "tcp", "mqtt":
			case "ssl", "tls", "mqtts":
				b.tls = true
			default:
				return nil, bad("scheme %q is not supported (%s)", scheme, brokerForms)
			}
			u, err := url.Parse(s)
			if err != nil {
				return nil, bad("not a URL (%s)", brokerForms)
			}
			if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
				return nil, bad("a path or parameters are not supported (%s)", brokerForms)
			}
			if u.User != nil {
				b.hasUser = true
				b.user = u.User.Username()
				b.password, _ = u.User.Password()
				if b.user == "" {
					return nil, bad("empty user name (%s)", brokerForms)
				}
			}
			b.addr = u.Host
		} else if strings.Contains(s, "@") {
			return nil, bad("%s", brokerForms)
		}
		if _, _, err := net.SplitHostPort(b.addr); err != nil {
			return nil, bad("%v (%s)", err, brokerForms)
		}
		out = append(out, b)
	}
	if o.tlsConfig == nil && slices.ContainsFunc(out, func(b broker) bool { return b.tls }) {
		// A TLS scheme without tls_* keys: the defaults, which cannot fail.
		o.tlsConfig, _ = (&settings.TLS{TLS: true}).Config()
	}
	return out, nil
}

// seconds converts a validated duration setting to MQTT's uint32 seconds.
func seconds(d settings.Duration) uint32 { return uint32(time.Duration(d) / time.Second) }

// contains reports whether list holds s.
func contains(list []string, s string) bool { return slices.Contains(list, s) }
