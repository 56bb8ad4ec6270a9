package kafka

import (
	"fmt"
	"net"
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/nextpkg/vrpc/rpcbus"
)

// NewEmbedded returns a bus of type embedded: a Kafka bus whose broker runs
// in this process, listening on cfg.Brokers[0] (default 127.0.0.1:9092;
// port 0 picks a free port, which Bus.Brokers reports). Other processes
// reach it with type kafka at that address. Buses of type embedded with the
// same address in one process share the broker; the last to close stops
// it. cfg.Settings are those of type kafka plus data_dir, a directory to
// keep the broker's data in across restarts.
func NewEmbedded(cfg rpcbus.Config) (*Bus, error) {
	var eo embeddedOptions
	o, err := decodeOptions(cfg.Settings, &eo)
	if err != nil {
		return nil, err
	}
	addr := defaultBroker
	switch len(cfg.Brokers) {
	case 0:
	case 1:
		addr = cfg.Brokers[0]
	default:
		return nil, fmt.Errorf("rpc_bus.brokers: type embedded runs one broker, at one address; got %q", cfg.Brokers)
	}
	if o.tlsConfig != nil {
		return nil, badSetting("tls", "the embedded broker serves plain TCP; the tls_* keys are for type kafka")
	}
	var user embeddedUser
	if o.sasl != nil {
		// The broker asks for the same credentials its clients are given.
		user = embeddedUser{o.SASLMechanism, o.Username, o.Password}
	}
	c, err := acquire(addr, eo.DataDir, o.MaxMessageBytes, user, nil)
	if err != nil {
		return nil, err
	}
	b, err := newBus(o, []string{c.addr}, func() { c.release() })
	if err != nil {
		c.release()
		return nil, err
	}
	return b, nil
}

// Embedded is a handle on an in-process Kafka broker (franz-go's kfake).
type Embedded struct {
	c    *cluster
	once sync.Once
}

// StartEmbedded starts a broker listening on addr (port 0: a free port),
// or, if one started by this process already listens there, shares it:
// the broker stops when the last handle on it is closed, be it from
// StartEmbedded or a bus of type embedded. opts are passed to kfake and may
// only be given to the call that starts the broker; asking for options at
// the address of a running broker returns an error wrapping
// ErrEmbeddedConflict.
func StartEmbedded(addr string, opts ...kfake.Opt) (*Embedded, error) {
	c, err := acquire(addr, "", defaultMaxMessageBytes, embeddedUser{}, opts)
	if err != nil {
		return nil, err
	}
	return &Embedded{c: c}, nil
}

// Addr returns the address the broker listens on.
func (e *Embedded) Addr() string { return e.c.addr }

// Close releases this handle; the broker stops with the last one. Calling
// it again does nothing.
func (e *Embedded) Close() { e.once.Do(e.c.release) }

// cluster is a running broker and the handles on it.
type cluster struct {
	kc      *kfake.Cluster
	addr    string   // bound address
	keys    []string // under which it is registered
	dataDir string
	user    embeddedUser // the SASL user it asks for, if any
	custom  bool         // started with caller's kfake options
	refs    int          // guarded by embeddedMu
}

var (
	embeddedMu sync.Mutex
	// embedded holds the running brokers by the address asked for and by
	// the address bound, so that "localhost:9092" and "127.0.0.1:9092",
	// or a port 0 broker and a later user of its port, find each other.
	embedded = map[string]*cluster{}
)

// embeddedUser is the SASL user an embedded broker asks its clients for;
// the zero value asks for none.
type embeddedUser struct{ mechanism, name, password string }

func acquire(addr, dataDir string, maxMessageBytes int, user embeddedUser, opts []kfake.Opt) (*cluster, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("rpc_bus.brokers: embedded broker address %q: %w", addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return nil, fmt.Errorf("rpc_bus.brokers: embedded broker address %q: bad port", addr)
	}

	embeddedMu.Lock()
	defer embeddedMu.Unlock()
	if c := embedded[addr]; c != nil && p != 0 {
		if len(opts) > 0 || c.custom || c.dataDir != dataDir || c.user != user {
			return nil, fmt.Errorf("%w: at %s (data_dir %q, asked for %q; the SASL user and options are the first user's too)",
				ErrEmbeddedConflict, addr, c.dataDir, dataDir)
		}
		c.refs++
		return c, nil
	}

	kopts := []kfake.Opt{
		kfake.NumBrokers(1),
		// kfake listens on 127.0.0.1:<port>; we listen on the host asked
		// for instead, which is also what the broker advertises.
		kfake.Ports(p),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, addr) }),
		kfake.BrokerConfigs(map[string]string{"message.max.bytes": strconv.Itoa(maxMessageBytes)}),
	}
	if dataDir != "" {
		kopts = append(kopts, kfake.DataDir(dataDir))
	}
	if user != (embeddedUser{}) {
		kopts = append(kopts, kfake.EnableSASL(), kfake.Superuser(user.mechanism, user.name, user.password))
	}
	kc, err := kfake.NewCluster(append(kopts, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka: starting the embedded broker at %s: %w", addr, err)
	}
	c := &cluster{kc: kc, addr: kc.ListenAddrs()[0], dataDir: dataDir, user: user, custom: len(opts) > 0, refs: 1}
	keys := []string{c.addr}
	if p != 0 && addr != c.addr {
		keys = append(keys, addr)
	}
	for _, k := range keys {
		if _, taken := embedded[k]; !taken {
			embedded[k] = c
			c.keys = append(c.keys, k)
		}
	}
	return c, nil
}

func (c *cluster) release() {
	embeddedMu.Lock()
	defer embeddedMu.Unlock()
	if c.refs--; c.refs > 0 {
		return
	}
	for _, k := range c.keys {
		if embedded[k] == c {
			delete(embedded, k)
		}
	}
	c.kc.Close()
}
