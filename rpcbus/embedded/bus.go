package embedded

import (
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/nextpkg/vrpc/internal/settings"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/kafka"
)

func init() {
	rpcbus.Register("embedded", func(cfg rpcbus.Config) (rpcbus.Bus, error) {
		b, err := New(cfg)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return b, nil
	})
}

// defaultAddr is where the broker listens when rpc_bus.brokers is empty:
// where type kafka looks for one by default.
const defaultAddr = "127.0.0.1:9092"

// ownSettings are the rpc_bus.settings type embedded takes besides those of
// type kafka.
type ownSettings struct {
	DataDir        string            `json:"data_dir"`
	Retention      settings.Duration `json:"retention"`
	RetentionBytes int64             `json:"retention_bytes"`
}

// ownKeys are the settings keys of the broker, not of its clients.
var ownKeys = []string{"data_dir", "retention", "retention_bytes"}

func (s *ownSettings) retention() (retention, error) {
	r := retention{age: time.Duration(s.Retention), bytes: s.RetentionBytes}
	if r.age < minRetention || r.age > maxRetention {
		return r, rpcbus.BadSetting("retention", "%v is out of range (want %v to %v)", r.age, minRetention, maxRetention)
	}
	if r.bytes != -1 && r.bytes < minRetentionBytes {
		return r, rpcbus.BadSetting("retention_bytes", "%d is out of range (want -1 for no bound, or at least %d)", r.bytes, minRetentionBytes)
	}
	return r, nil
}

// Bus is a Kafka bus whose broker runs in this process. It is a *kafka.Bus
// (every method and optional interface of it) whose Close also releases the
// broker.
type Bus struct {
	*kafka.Bus
	once    sync.Once
	release func()
}

// New returns a bus of type embedded: a Kafka bus whose broker runs in this
// process, listening on cfg.Brokers[0] (default 127.0.0.1:9092; port 0
// picks a free port, which Bus.Brokers reports). Other processes reach it
// with type kafka at that address. Buses of type embedded with the same
// address in one process share the broker; the last to close stops it.
// cfg.Settings are those of type kafka plus data_dir, a directory to keep
// the broker's data in across restarts.
func New(cfg rpcbus.Config) (*Bus, error) {
	s := ownSettings{Retention: settings.Duration(DefaultRetention), RetentionBytes: DefaultRetentionBytes}
	bs, err := kafka.DecodeSettings(cfg.Settings, &s)
	if err != nil {
		return nil, err
	}
	ret, err := s.retention()
	if err != nil {
		return nil, err
	}
	addr := defaultAddr
	switch len(cfg.Brokers) {
	case 0:
	case 1:
		addr = cfg.Brokers[0]
	default:
		return nil, fmt.Errorf("rpc_bus.brokers: type embedded runs one broker, at one address; got %q", cfg.Brokers)
	}
	if bs.TLS {
		return nil, rpcbus.BadSetting("tls", "the embedded broker serves plain TCP; the tls_* keys are for type kafka")
	}
	// The broker asks for the same credentials its clients are given.
	u := user{bs.SASLMechanism, bs.Username, bs.Password}
	c, err := acquire(addr, s.DataDir, bs.MaxMessageBytes, u, ret, nil)
	if err != nil {
		return nil, err
	}
	set := maps.Clone(cfg.Settings)
	for _, k := range ownKeys {
		delete(set, k) // the broker's, not the client's
	}
	kb, err := kafka.New(rpcbus.Config{Type: "kafka", Brokers: []string{c.addr}, Settings: set})
	if err != nil {
		c.release()
		return nil, err
	}
	return &Bus{Bus: kb, release: c.release}, nil
}

// Close closes the Kafka bus, then releases the broker, which stops if no
// other bus or Broker of this process holds it. Calling it again does
// nothing.
func (b *Bus) Close() error {
	err := b.Bus.Close()
	b.once.Do(b.release)
	return err
}
