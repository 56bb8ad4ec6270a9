package faults_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/nextpkg/vrpc/rpcbus/embedded"
)

// outageBroker is a broker a test stops and starts again on the same
// address and data, while the vRPC servers and clients using it go on.
type outageBroker interface {
	// Addr is where the broker listens, before and after a restart.
	Addr() string
	// Stop ends the broker abruptly (see each kind) and returns once it is
	// gone.
	Stop(t testing.TB)
	// Start starts it again on the same address and data, and returns once
	// it takes connections.
	Start(t testing.TB)
}

// embeddedKafka is the in-process Kafka, closed and started again on its
// data directory.
type embeddedKafka struct {
	addr, dir string
	e         *embedded.Broker
}

func startEmbeddedKafka(t testing.TB) outageBroker {
	k := newEmbeddedKafka(t)
	k.Start(t)
	return k
}

// newEmbeddedKafka is startEmbeddedKafka without the start: a free
// address and a data directory, for Start to start it on.
func newEmbeddedKafka(t testing.TB) outageBroker {
	k := &embeddedKafka{addr: freeAddr(t), dir: t.TempDir()}
	t.Cleanup(func() {
		if k.e != nil {
			k.e.Close()
		}
	})
	return k
}

func (k *embeddedKafka) Addr() string { return k.addr }

func (k *embeddedKafka) Stop(testing.TB) {
	k.e.Close()
	k.e = nil
}

func (k *embeddedKafka) Start(t testing.TB) {
	t.Helper()
	e, err := embedded.Start(k.addr, kfake.DataDir(k.dir), kfake.GroupMinSessionTimeout(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	k.e = e
}

// brokerProcess is a broker this test runs itself, in a process group of
// its own, on a free port and a data directory of its own: unlike the
// machine's shared servers, the test may kill it and start it again.
type brokerProcess struct {
	name string
	addr string
	dir  string
	// stopSignal is what Stop sends to the process group.
	stopSignal syscall.Signal
	// command is the broker's command line; env is added to the test's
	// environment.
	command []string
	env     []string
	// ready reports whether the broker takes requests; nil: its port
	// accepts connections.
	ready func(ctx context.Context) error

	cmd    *exec.Cmd
	exited chan struct{}
}

// needBinary returns the first of paths that exists (a bare name is looked
// up in PATH), or skips t saying how to install it; under CI (CI=true) it
// fails t instead, as the backends' tests do for a missing server.
func needBinary(t testing.TB, pkg string, paths ...string) string {
	t.Helper()
	for _, p := range paths {
		if !strings.Contains(p, "/") {
			if lp, err := exec.LookPath(p); err == nil {
				return lp
			}
			continue
		}
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	msg := fmt.Sprintf("none of %v is installed (apt-get install %s)", paths, pkg)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// logFile is where the broker's output goes: a file, so that a helper the
// broker leaves running cannot hold up Wait on an output pipe.
func (p *brokerProcess) logFile() string { return filepath.Join(p.dir, p.name+".log") }

func (p *brokerProcess) output() string {
	b, _ := os.ReadFile(p.logFile())
	const keep = 4000
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	return string(b)
}

// Addr implements outageBroker.
func (p *brokerProcess) Addr() string { return p.addr }

// Start implements outageBroker: it starts the broker and waits until it
// is ready.
func (p *brokerProcess) Start(t testing.TB) {
	t.Helper()
	log, err := os.OpenFile(p.logFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(p.command[0], p.command[1:]...)
	cmd.Dir = p.dir
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = log, log
	// Pdeathsig: if the test binary dies without its cleanups (a panic, a
	// timeout, a closed output pipe), the kernel kills the broker too. It
	// fires when the thread that started the child ends, so that thread is
	// kept, locked, until the child has exited. (RabbitMQ's node is the
	// child of its start script, which is all Pdeathsig reaches.)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	started, exited := make(chan error, 1), make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		t.Fatalf("starting %s: %v", p.name, err)
	}
	p.cmd, p.exited = cmd, exited
	limit := time.Now().Add(90 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := p.check(ctx)
		cancel()
		if err == nil {
			return
		}
		select {
		case <-exited:
			t.Fatalf("%s exited before it was ready (%v):\n%s", p.name, cmd.ProcessState, p.output())
		default:
		}
		if time.Now().After(limit) {
			t.Fatalf("%s not ready at %s within 90s (%v):\n%s", p.name, p.addr, err, p.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *brokerProcess) check(ctx context.Context) error {
	if p.ready != nil {
		return p.ready(ctx)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", p.addr)
	if err == nil {
		c.Close()
	}
	return err
}

// Stop implements outageBroker: it sends stopSignal to the broker's
// process group, waits for the broker to exit, and then kills whatever of
// the group is left (helpers such as RabbitMQ's).
func (p *brokerProcess) Stop(t testing.TB) {
	t.Helper()
	if p.cmd == nil {
		return
	}
	pgid := p.cmd.Process.Pid
	if err := syscall.Kill(-pgid, p.stopSignal); err != nil {
		t.Fatalf("signalling %s: %v", p.name, err)
	}
	select {
	case <-p.exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not exit within 60s of %v:\n%s", p.name, p.stopSignal, p.output())
	}
	p.reap()
}

// reap kills what is left of the broker's process group and waits until
// none of it runs.
func (p *brokerProcess) reap() {
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-p.exited
	for limit := time.Now().Add(10 * time.Second); time.Now().Before(limit); time.Sleep(20 * time.Millisecond) {
		if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
			break
		}
	}
	p.cmd = nil
}

// startBrokerProcess starts p and kills it when the test ends, before its
// data directory is removed; with startLater set, it leaves the start to
// the test (Start).
func startBrokerProcess(t testing.TB, p *brokerProcess) *brokerProcess {
	t.Helper()
	t.Cleanup(func() {
		if p.cmd != nil {
			p.reap()
		}
	})
	if !startLater(t) {
		p.Start(t)
	}
	return p
}

// notStarted holds the tests whose brokers startBrokerProcess leaves
// stopped: see later.
var notStarted sync.Map // testing.TB → struct{}

// later makes start (one of startNATS, startRedis, ...) return its broker
// without starting it: the test starts it with Start, after what should
// not need it at first.
func later(t testing.TB, start func(testing.TB) outageBroker) outageBroker {
	t.Helper()
	notStarted.Store(t, struct{}{})
	defer notStarted.Delete(t)
	return start(t)
}

func startLater(t testing.TB) bool {
	_, ok := notStarted.Load(t)
	return ok
}

func splitPort(t testing.TB, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// startNATS runs nats-server with JetStream on a free port, its store in a
// temporary directory. Stop kills it (SIGKILL): JetStream's files are
// written as it goes, so the streams, consumers and stored requests come
// back with it.
func startNATS(t testing.TB) outageBroker {
	bin := needBinary(t, "nats-server", "/usr/sbin/nats-server", "nats-server")
	dir, addr := t.TempDir(), freeAddr(t)
	return startBrokerProcess(t, &brokerProcess{
		name: "nats-server", addr: addr, dir: dir, stopSignal: syscall.SIGKILL,
		command: []string{bin, "-a", "127.0.0.1", "-p", splitPort(t, addr), "-js", "-sd", filepath.Join(dir, "jetstream")},
	})
}

// startRedis runs redis-server on a free port, its files in a temporary
// directory. Stop kills it (SIGKILL). With aof, the server keeps its
// streams and groups across the restart: Redis writes each command to the
// append-only file before it replies, so everything the bus was told had
// happened is there after the restart. Without, it comes back empty, as
// the machine's Redis (--save "" --appendonly no) would: see "Durability"
// in rpcbus/redis.
func startRedis(t testing.TB, aof bool) outageBroker {
	bin := needBinary(t, "redis-server", "redis-server", "/usr/bin/redis-server")
	dir, addr := t.TempDir(), freeAddr(t)
	appendonly := "no"
	if aof {
		appendonly = "yes"
	}
	return startBrokerProcess(t, &brokerProcess{
		name: "redis-server", addr: addr, dir: dir, stopSignal: syscall.SIGKILL,
		command: []string{bin, "--port", splitPort(t, addr), "--bind", "127.0.0.1", "--dir", dir,
			"--save", "", "--appendonly", appendonly, "--appendfsync", "everysec", "--daemonize", "no", "--logfile", ""},
		ready: func(ctx context.Context) error {
			rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
			defer rdb.Close()
			return rdb.Ping(ctx).Err() // also fails while the AOF loads
		},
	})
}

// startMosquitto runs mosquitto on a free port with persistence in a
// temporary directory (as root: by default Mosquitto started as root
// becomes user mosquitto, which cannot write there, and then persists
// nothing); Stop sends it stop. Mosquitto writes its sessions and retained
// messages to disk when it exits on SIGTERM, and otherwise only every
// autosave_interval (30 minutes by default): after a SIGKILL it comes back
// without them. Either way Mosquitto 2.0 comes back without the shared
// subscriptions ($share/<group>/...) of the sessions it restores: plain
// subscriptions come back, shared ones do not, so a group's topic has no
// subscriber until its members have reconnected and subscribed again.
func startMosquitto(t testing.TB, stop syscall.Signal) outageBroker {
	bin := needBinary(t, "mosquitto", "/usr/sbin/mosquitto", "mosquitto")
	dir, addr := t.TempDir(), freeAddr(t)
	conf := filepath.Join(dir, "mosquitto.conf")
	err := os.WriteFile(conf, []byte(fmt.Sprintf(`listener %s 127.0.0.1
allow_anonymous true
persistence true
persistence_location %s/
user root
log_dest stdout
`, splitPort(t, addr), dir)), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	return startBrokerProcess(t, &brokerProcess{
		name: "mosquitto", addr: addr, dir: dir, stopSignal: stop,
		command: []string{bin, "-c", conf},
	})
}

// startRabbitMQ runs a RabbitMQ node of the test's own: its node name,
// AMQP and distribution ports, database, logs, configuration and Erlang
// cookie (HOME) are the test's, and no plugins run. It registers with the
// machine's epmd. It takes a few seconds to boot, each time.
//
// Stop ends the node with SIGTERM, a clean shutdown; durable quorum queues
// and persistent messages come back when it starts again on its database.
// Not SIGKILL: RabbitMQ 3.10.8 killed a few seconds after declaring a
// quorum queue came back, in two runs of three here, with the queue's
// record but without its Raft member ("leader call - leader not known" in
// its log, for over a minute), and the queue then neither confirmed
// publishes nor took consumers: the broker's own fault, which no client
// can recover from (calls failed with UNAVAILABLE at their deadline, as
// they should, but did not succeed again).
func startRabbitMQ(t testing.TB) outageBroker {
	bin := needBinary(t, "rabbitmq-server", "/usr/lib/rabbitmq/bin/rabbitmq-server")
	needBinary(t, "erlang-base", "erl")
	dir, addr, dist := t.TempDir(), freeAddr(t), freeAddr(t)
	port := splitPort(t, addr)
	if err := os.WriteFile(filepath.Join(dir, "enabled_plugins"), []byte("[].\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("listeners.tcp.default = 127.0.0.1:%s\nloopback_users = none\n", port)
	if err := os.WriteFile(filepath.Join(dir, "rabbitmq.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return startBrokerProcess(t, &brokerProcess{
		name: "rabbitmq", addr: addr, dir: dir, stopSignal: syscall.SIGTERM,
		command: []string{bin},
		env: []string{
			"HOME=" + dir,
			"RABBITMQ_CONF_ENV_FILE=" + filepath.Join(dir, "rabbitmq-env.conf"), // none: not the machine's
			"RABBITMQ_NODENAME=vrpc-faults-" + strings.ToLower(rand.Text()[:8]) + "@localhost",
			"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
			"RABBITMQ_NODE_PORT=" + port,
			"RABBITMQ_DIST_PORT=" + splitPort(t, dist),
			"RABBITMQ_MNESIA_BASE=" + filepath.Join(dir, "mnesia"),
			"RABBITMQ_LOG_BASE=" + filepath.Join(dir, "log"),
			"RABBITMQ_ENABLED_PLUGINS_FILE=" + filepath.Join(dir, "enabled_plugins"),
			"RABBITMQ_CONFIG_FILE=" + filepath.Join(dir, "rabbitmq.conf"),
			"RABBITMQ_PID_FILE=" + filepath.Join(dir, "rabbitmq.pid"),
			"ERL_EPMD_ADDRESS=127.0.0.1",
		},
	})
}
