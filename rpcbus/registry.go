package rpcbus

import (
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Config is rpc_bus in the YAML configuration of both servers and clients.
type Config struct {
	// Type picks a registered backend: kafka, embedded, memory, ...
	Type string `json:"type,default=kafka"`
	// Brokers are the addresses of the bus's servers.
	Brokers []string `json:"brokers,optional"`
	// Settings are the backend's own options, decoded strictly by it.
	Settings map[string]any `json:"settings,optional"`
}

// Factory builds a bus from its configuration.
type Factory func(cfg Config) (Bus, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]Factory{}
)

// Register makes a backend available as rpc_bus.type name. It is meant to
// be called from init and panics if name is taken.
func Register(name string, f Factory) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[name]; dup {
		panic("rpcbus: Register called twice for type " + name)
	}
	registry[name] = f
}

// Types lists the registered backend names, sorted.
func Types() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	names := make([]string, 0, len(registry))
	for name := range registry {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// shipped are the backends of this module, each registered by the package
// rpcbus/<type>.
var shipped = map[string]bool{"kafka": true, "embedded": true, "nats": true, "amqp": true, "redis": true, "mqtt": true, "memory": true}

// New builds the bus cfg.Type names.
func New(cfg Config) (Bus, error) {
	registryMu.RLock()
	f, ok := registry[cfg.Type]
	registryMu.RUnlock()
	if !ok {
		fix := "a backend registers when its package is imported"
		if shipped[cfg.Type] {
			fix = fmt.Sprintf(`import _ "github.com/nextpkg/vrpc/rpcbus/%s" (or rpcbus/all, every backend) in the program`, cfg.Type)
		}
		return nil, fmt.Errorf("rpc_bus.type %q is not registered (have: %s): %s",
			cfg.Type, strings.Join(Types(), ", "), fix)
	}
	return f(cfg)
}

// CheckName returns an error naming the configuration key when value is
// set but not a ValidName; names become parts of topic, subject and queue
// names on every bus.
func CheckName(key, value string) error {
	if value == "" || ValidName(value) {
		return nil
	}
	return fmt.Errorf("%s %q: use letters, digits, '.', '_' and '-' only (it becomes part of a topic name)", key, value)
}

// ValidName reports whether s can be part of a topic, subject or queue name
// on every bus vRPC supports: letters, digits, '.', '_' and '-'.
func ValidName(s string) bool {
	if s == "" || len(s) > 200 {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
	}) < 0
}
