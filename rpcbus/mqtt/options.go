package mqtt

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math"
	"net"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/nextpkg/vrpc/internal/settings"
)

const settingsPrefix = "rpc_bus.settings"

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
	ClientIDPrefix        string            `json:"client_id_prefix"`
	Username              string            `json:"username"`
	Password              string            `json:"password"`
	TLS                   bool              `json:"tls"`
	TLSCAFile             string            `json:"tls_ca_file"`
	TLSCertFile           string            `json:"tls_cert_file"`
	TLSKeyFile            string            `json:"tls_key_file"`
	TLSServerName         string            `json:"tls_server_name"`
	TLSInsecureSkipVerify bool              `json:"tls_insecure_skip_verify"`
	QoS                   int               `json:"qos"`
	SessionExpiry         settings.Duration `json:"session_expiry"`
	WillDelay             settings.Duration `json:"will_delay"`
	Keepalive             settings.Duration `json:"keepalive"`
	ConnectTimeout        settings.Duration `json:"connect_timeout"`
	ReconnectBackoffMax   settings.Duration `json:"reconnect_backoff_max"`
	MaxMessageBytes       int               `json:"max_message_bytes"`

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
	known := settings.Keys(&o)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys) // report the first bad key deterministically
	for _, k := range keys {
		if !contains(known, k) {
			hint := ""
			if s := closest(k, known); s != "" {
				hint = fmt.Sprintf("did you mean %s? ", s)
			}
			return o, badSetting(k, "unknown key (%sknown: %s)", hint, strings.Join(known, ", "))
		}
		// One key at a time, so that a type error names its key.
		if err := settings.Decode(settingsPrefix, map[string]any{k: m[k]}, &o); err != nil {
			return o, &SettingError{Key: settingsPrefix + "." + k, Err: err}
		}
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
	tlsSet := o.TLSCAFile != "" || o.TLSCertFile != "" || o.TLSKeyFile != "" || o.TLSServerName != "" || o.TLSInsecureSkipVerify
	if tlsSet && !o.TLS {
		o.TLS = true // any tls_* key turns TLS on
	}
	if o.TLS {
		cfg, err := o.buildTLS()
		if err != nil {
			return err
		}
		o.tlsConfig = cfg
	}
	return nil
}

// buildTLS reads the CA and client certificate files once, at start-up, so
// that a wrong path is an error naming its key rather than a failed dial.
func (o *options) buildTLS() (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         o.TLSServerName,
		InsecureSkipVerify: o.TLSInsecureSkipVerify, //nolint:gosec // the operator's explicit choice
	}
	if o.TLSCAFile != "" {
		pem, err := os.ReadFile(o.TLSCAFile)
		if err != nil {
			return nil, badSetting("tls_ca_file", "%v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, badSetting("tls_ca_file", "%q holds no PEM certificate", o.TLSCAFile)
		}
		cfg.RootCAs = pool
	}
	switch {
	case o.TLSCertFile != "" && o.TLSKeyFile != "":
		cert, err := tls.LoadX509KeyPair(o.TLSCertFile, o.TLSKeyFile)
		if err != nil {
			return nil, badSetting("tls_cert_file", "loading the key pair %q, %q: %v", o.TLSCertFile, o.TLSKeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case o.TLSCertFile != "":
		return nil, badSetting("tls_key_file", "is missing: tls_cert_file needs its private key")
	case o.TLSKeyFile != "":
		return nil, badSetting("tls_cert_file", "is missing: tls_key_file needs its certificate")
	}
	return cfg, nil
}

// broker is one entry of rpc_bus.brokers: host:port, optionally with a
// scheme (tcp://, mqtt://, ssl://, tls://, mqtts://) that chooses TLS.
type broker struct {
	addr string
	tls  bool
}

func parseBrokers(list []string, o *options) ([]broker, error) {
	if len(list) == 0 {
		list = []string{defaultBroker}
	}
	out := make([]broker, 0, len(list))
	for _, s := range list {
		b := broker{addr: s, tls: o.TLS}
		if scheme, rest, ok := strings.Cut(s, "://"); ok {
			switch strings.ToLower(scheme) {
			case "tcp", "mqtt":
			case "ssl", "tls", "mqtts":
				b.tls = true
			default:
				return nil, fmt.Errorf("rpc_bus.brokers: %q: scheme %q is not supported (want tcp://, mqtt://, tls://, ssl:// or mqtts://)", s, scheme)
			}
			b.addr = rest
		}
		if _, _, err := net.SplitHostPort(b.addr); err != nil {
			return nil, fmt.Errorf("rpc_bus.brokers: %q: want host:port (%v)", s, err)
		}
		out = append(out, b)
	}
	for _, b := range out {
		if b.tls && o.tlsConfig == nil {
			cfg, err := o.buildTLS()
			if err != nil {
				return nil, err
			}
			o.tlsConfig = cfg
		}
	}
	return out, nil
}

// seconds converts a validated duration setting to MQTT's uint32 seconds.
func seconds(d settings.Duration) uint32 { return uint32(time.Duration(d) / time.Second) }

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// closest returns the known key nearest to k if it is a likely typo.
func closest(k string, known []string) string {
	best, bestD := "", 3 // at most two edits away
	for _, s := range known {
		if d := editDistance(k, s); d < bestD {
			best, bestD = s, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
