package vconfig

import (
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"

	"github.com/nextpkg/vrpc/rpcbus"
)

// tlsSchemes are the address schemes that mean TLS on the buses vRPC
// speaks.
var tlsSchemes = map[string]bool{"tls": true, "ssl": true, "mqtts": true, "amqps": true, "rediss": true, "wss": true, "https": true}

// Loopback reports whether a host (or host:port, or URL) names this
// machine only: localhost or a loopback IP. An empty host, 0.0.0.0 or ::
// (every interface) is not loopback.
func Loopback(addr string) bool {
	host := addrHost(addr)
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// addrHost is the host of a host:port, a bare host or a URL (scheme, user
// information and path stripped).
func addrHost(addr string) string {
	if _, rest, ok := strings.Cut(addr, "://"); ok {
		addr = rest
	}
	if i := strings.IndexByte(addr, '/'); i >= 0 {
		addr = addr[:i]
	}
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		addr = addr[i+1:]
	}
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return strings.Trim(addr, "[]")
}

// tlsSetting reports whether settings turn TLS on the way every backend's
// tls keys do: tls: true, or any tls_* key set.
func tlsSetting(settings map[string]any) bool {
	for k, v := range settings {
		if k != "tls" && !strings.HasPrefix(k, "tls_") {
			continue
		}
		switch v := v.(type) {
		case bool:
			if v {
				return true
			}
		case string:
			if v != "" && v != "false" {
				return true
			}
		case nil:
		default:
			return true
		}
	}
	return false
}

func insecureSetting(settings map[string]any) bool {
	v, ok := settings["tls_insecure_skip_verify"]
	return ok && (v == true || v == "true")
}

// BusWarnings are the risks of a bus configuration, one sentence each,
// key naming it (rpc_bus): plain text to a broker that is not on this
// machine, and certificates not verified. The in-process memory bus has
// none.
func BusWarnings(key string, bus rpcbus.Config) []string {
	if bus.Type == "memory" {
		return nil
	}
	var out []string
	secure := tlsSetting(bus.Settings) && bus.Type != "embedded"
	var plain []string
	for _, b := range bus.Brokers {
		scheme, _, hasScheme := strings.Cut(b, "://")
		if secure || hasScheme && tlsSchemes[strings.ToLower(scheme)] || Loopback(b) {
			continue
		}
		plain = append(plain, rpcbus.RedactAddress(b))
	}
	switch {
	case len(plain) == 0:
	case bus.Type == "embedded":
		out = append(out, fmt.Sprintf("%s: the embedded broker takes plain-text connections on %v from other machines "+
			"(it cannot speak TLS); listen on 127.0.0.1 or put a TLS proxy in front", key, plain))
	default:
		out = append(out, fmt.Sprintf("%s: messages and credentials travel in plain text to %v, which is not this machine; "+
			"set %s.settings.tls (with tls_ca_file; on NATS and MQTT a tls:// address will do)", key, plain, key))
	}
	if insecureSetting(bus.Settings) {
		out = append(out, fmt.Sprintf("%s.settings.tls_insecure_skip_verify is true: any server's certificate is accepted, "+
			"so anyone on the path can pose as the brokers; give tls_ca_file instead", key))
	}
	return out
}

// SecurityWarnings are the risks of a server configuration, one sentence
// each: those of its bus (BusWarnings), targets and a dedup Redis reached
// without verifying certificates or in plain text off this machine. Whether
// callers are authenticated the server decides (vserver).
func (c *Config) SecurityWarnings() []string {
	out := BusWarnings("rpc_bus", c.RpcBus)
	names := make([]string, 0, len(c.Targets))
	for name := range c.Targets {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if insecureSetting(c.Targets[name].Settings) {
			out = append(out, fmt.Sprintf("targets.%s.settings.tls_insecure_skip_verify is true: any certificate is accepted "+
				"from the target; give tls_ca_file instead", name))
		}
	}
	if c.Dedup.Store == "redis" {
		r := c.Dedup.Redis
		tlsOn := r.TLS || r.TLSCAFile != "" || r.TLSCertFile != "" || r.TLSKeyFile != "" || r.TLSServerName != "" || r.TLSInsecureSkipVerify
		if !tlsOn && !Loopback(r.Addr) {
			out = append(out, fmt.Sprintf("dedup.redis: stored replies and the password travel in plain text to %s, "+
				"which is not this machine; set dedup.redis.tls (with tls_ca_file)", rpcbus.RedactAddress(r.Addr)))
		}
		if r.TLSInsecureSkipVerify {
			out = append(out, "dedup.redis.tls_insecure_skip_verify is true: any certificate is accepted from Redis; give tls_ca_file instead")
		}
	}
	return out
}

// SecurityWarnings are the risks of a client configuration: those of its
// bus (BusWarnings).
func (c *ClientConfig) SecurityWarnings() []string {
	return BusWarnings("rpc_bus", c.RpcBus)
}

var warned sync.Map // warning → struct{}

// WarnOnce logs each warning to log, as an error so that it shows at every log
// level, once per process: a server, client and gateway in one process
// that share a bus configuration say it once.
func WarnOnce(log *slog.Logger, warnings ...string) {
	for _, w := range warnings {
		if _, dup := warned.LoadOrStore(w, struct{}{}); !dup {
			log.Error("vrpc: WARNING: " + w)
		}
	}
}
