package embedded

import (
	"fmt"
	"net"
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/nextpkg/vrpc/rpcbus/kafka"
)

// Broker is a handle on an in-process Kafka broker (franz-go's kfake).
type Broker struct {
	c    *cluster
	once sync.Once
}

// Start starts a broker listening on addr (port 0: a free port), or, if
// one started by this process already listens there, shares it: the broker
// stops when the last handle on it is closed, be it from Start or a bus of
// type embedded. opts are passed to kfake and may only be given to the call
// that starts the broker; asking for options at the address of a running
// broker returns an error wrapping ErrConflict. The broker keeps records
// for DefaultRetention and DefaultRetentionBytes a partition.
func Start(addr string, opts ...kfake.Opt) (*Broker, error) {
	bs, err := kafka.DecodeSettings(nil, nil) // the defaults of type kafka
	if err != nil {
		return nil, err
	}
	c, err := acquire(addr, "", bs.MaxMessageBytes, user{}, defaultRetention(), opts)
	if err != nil {
		return nil, err
	}
	return &Broker{c: c}, nil
}

// Addr returns the address the broker listens on.
func (e *Broker) Addr() string { return e.c.addr }

// Close releases this handle; the broker stops with the last one. Calling
// it again does nothing.
func (e *Broker) Close() { e.once.Do(e.c.release) }

// cluster is a running broker and the handles on it.
type cluster struct {
	kc      *kfake.Cluster
	addr    string   // bound address
	keys    []string // under which it is registered
	dataDir string
	user    user // the SASL user it asks for, if any
	ret     retention
	custom  bool // started with caller's kfake options
	refs    int  // guarded by runningMu

	stop    chan struct{} // closed by the last release: ends the retention loop
	stopped chan struct{} // closed when the retention loop has returned
}

var (
	runningMu sync.Mutex
	// running holds the running brokers by the address asked for and by
	// the address bound, so that "localhost:9092" and "127.0.0.1:9092",
	// or a port 0 broker and a later user of its port, find each other.
	running = map[string]*cluster{}
)

// user is the SASL user an embedded broker asks its clients for; the zero
// value asks for none.
type user struct{ mechanism, name, password string }

// acquire starts a broker at addr, or takes another handle on the one
// running there if it was started with the same data directory, user and
// retention.
func acquire(addr, dataDir string, maxMessageBytes int, u user, ret retention, opts []kfake.Opt) (*cluster, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("rpc_bus.brokers: embedded broker address %q: %w", addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return nil, fmt.Errorf("rpc_bus.brokers: embedded broker address %q: bad port", addr)
	}

	runningMu.Lock()
	defer runningMu.Unlock()
	if c := running[addr]; c != nil && p != 0 {
		if len(opts) > 0 || c.custom || c.dataDir != dataDir || c.user != u || c.ret != ret {
			return nil, fmt.Errorf("%w: at %s (data_dir %q, asked for %q; retention %v/%d bytes, asked for %v/%d; the SASL user and options are the first user's too)",
				ErrConflict, addr, c.dataDir, dataDir, c.ret.age, c.ret.bytes, ret.age, ret.bytes)
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
		kfake.BrokerConfigs(ret.brokerConfigs()),
	}
	if dataDir != "" {
		kopts = append(kopts, kfake.DataDir(dataDir))
	}
	if u != (user{}) {
		kopts = append(kopts, kfake.EnableSASL(), kfake.Superuser(u.mechanism, u.name, u.password))
	}
	kc, err := kfake.NewCluster(append(kopts, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("embedded: starting the broker at %s: %w", addr, err)
	}
	c := &cluster{kc: kc, addr: kc.ListenAddrs()[0], dataDir: dataDir, user: u, ret: ret, custom: len(opts) > 0, refs: 1,
		stop: make(chan struct{}), stopped: make(chan struct{})}
	go c.enforceRetention()
	keys := []string{c.addr}
	if p != 0 && addr != c.addr {
		keys = append(keys, addr)
	}
	for _, k := range keys {
		if _, taken := running[k]; !taken {
			running[k] = c
			c.keys = append(c.keys, k)
		}
	}
	return c, nil
}

// release drops a handle; the last one stops the broker.
func (c *cluster) release() {
	runningMu.Lock()
	defer runningMu.Unlock()
	if c.refs--; c.refs > 0 {
		return
	}
	for _, k := range c.keys {
		if running[k] == c {
			delete(running, k)
		}
	}
	close(c.stop)
	<-c.stopped // before Close: ApplyRetention on a closed cluster would block
	c.kc.Close()
}
