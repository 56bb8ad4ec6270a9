package faults_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/goleak"
	"google.golang.org/grpc/metadata"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/faults"
	"github.com/nextpkg/vrpc/internal/settings"
	"github.com/nextpkg/vrpc/internal/vtest"
	"github.com/nextpkg/vrpc/rpcbus/embedded"
	"github.com/nextpkg/vrpc/vserver"
	_ "github.com/nextpkg/vrpc/vserver/redisdedup" // dedup.store redis
)

func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.DiscardHandler))
	// go-redis logs every failed dial: many a second while a test's Redis
	// is down on purpose.
	redis.SetLogger(quietRedis{})
	goleak.VerifyTestMain(m,
		// Process-lifetime goroutines go-zero starts in package init.
		goleak.IgnoreCurrent(),
	)
}

type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

// tagPlugin names the server that forwards a call, in the ServerHeader the
// target reads, so that a test knows which process executed what.
const tagPlugin = "faults.tag"

func init() {
	vserver.RegisterPlugin(tagPlugin, func(m map[string]any) (vserver.Middleware, error) {
		var s struct {
			Server string `json:"server"`
		}
		if err := settings.Decode("settings", m, &s); err != nil {
			return nil, err
		}
		return func(next vserver.Handler) vserver.Handler {
			return func(ctx context.Context, call *vserver.Call) *vserver.Result {
				if call.Metadata == nil {
					call.Metadata = metadata.MD{}
				}
				call.Metadata.Set(faults.ServerHeader, s.Server)
				return next(ctx, call)
			}
		}, nil
	})
}

// target is the name of the target every test's servers forward to.
const target = "counted"

// startKafka runs an in-process Kafka on a port of its own until the test
// ends, and returns its address; servers in other processes reach it there.
func startKafka(t testing.TB, opts ...kfake.Opt) string {
	t.Helper()
	e, err := embedded.Start("127.0.0.1:0", append(opts, kfake.GroupMinSessionTimeout(500*time.Millisecond))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e.Addr()
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startTarget serves tgt on a free port until the test ends.
func startTarget(t testing.TB, tgt *faults.Target) *faults.Serving {
	t.Helper()
	s, err := tgt.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// startServer runs a server in this process until the test ends.
var startServer = vtest.StartServer

// redisAddr returns the machine's Redis, or skips (fails under CI) when it
// is not reachable.
func redisAddr(t testing.TB) string {
	t.Helper()
	const addr = "127.0.0.1:6379"
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		msg := fmt.Sprintf("Redis at %s: %v (start it: redis-server --daemonize yes --port 6379 --save '' --appendonly no)", addr, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return addr
}

// redisDedup is a Redis dedup store under a prefix of the test's own,
// whose keys are deleted when the test ends.
func redisDedup(t testing.TB) vrpc.DedupConf {
	t.Helper()
	addr := redisAddr(t)
	prefix := fmt.Sprintf("vrpc:faults:%d:", time.Now().UnixNano())
	t.Cleanup(func() {
		cleanup(t, func(ctx context.Context) error { return deleteRedisKeys(ctx, addr, prefix) })
	})
	return vrpc.DedupConf{Store: "redis", TTL: 5 * time.Minute, Redis: vrpc.RedisConf{Addr: addr, Prefix: prefix}}
}

// deleteRedisKeys deletes every key starting with prefix.
func deleteRedisKeys(ctx context.Context, addr, prefix string) error {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	var keys []string
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("remove Redis keys %s*: %w", prefix, err)
	}
	if len(keys) > 0 {
		if err := rdb.Unlink(ctx, keys...).Err(); err != nil {
			return fmt.Errorf("remove Redis keys %s*: %w", prefix, err)
		}
	}
	return nil
}

// subtests runs the subtests added with add at once, and returns when
// they all have ended. For scenarios that mostly wait (an outage of a
// minute): with t.Parallel, at most -parallel of them (GOMAXPROCS: 2 on the
// development machine and CI) would run at a time, and the suite's wall
// time would grow by every bus's outage, not by one.
func subtests(t *testing.T, add func(run func(name string, f func(t *testing.T)))) {
	var wg sync.WaitGroup
	add(func(name string, f func(t *testing.T)) {
		wg.Go(func() { t.Run(name, f) })
	})
	wg.Wait()
}

// eventually polls cond until it holds or a generous limit passes.
func eventually(t testing.TB, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// serverEnv carries the JSON configuration of a server process.
const serverEnv = "VRPC_FAULTS_SERVER"

const (
	readyLine   = "faults: server ready"
	stoppedLine = "faults: server stopped"
)

// TestServerProcess is a vRPC server in a process of its own, started by
// startServerProcess: it serves until SIGTERM, then stops gracefully. It
// does nothing when run on its own.
func TestServerProcess(t *testing.T) {
	js := os.Getenv(serverEnv)
	if js == "" {
		t.Skip("runs only as a server process of the fault tests")
	}
	var cfg vrpc.Config
	if err := json.Unmarshal([]byte(js), &cfg); err != nil {
		t.Fatal(err)
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	defer signal.Stop(term)
	srv, err := vserver.NewServer(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Start() }()
	select {
	case <-srv.Ready():
	case err := <-errc:
		t.Fatal(err)
	}
	fmt.Println(readyLine)
	<-term
	srv.Stop()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	fmt.Printf("%s: %+v\n", stoppedLine, srv.Stats())
}

// serverProcess is a vRPC server running as a separate OS process (this
// test binary again, running TestServerProcess).
type serverProcess struct {
	name   string
	cmd    *exec.Cmd
	out    *lineWriter
	exited chan struct{}
	err    error // of Wait, once exited is closed
}

// startServerProcess starts a server process with cfg and waits until it
// consumes its request topic. It is killed when the test ends if still
// running.
func startServerProcess(t testing.TB, name string, cfg *vrpc.Config) *serverProcess {
	t.Helper()
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := &serverProcess{name: name, out: &lineWriter{ready: make(chan struct{})}, exited: make(chan struct{})}
	p.cmd = exec.Command(os.Args[0], "-test.run=^TestServerProcess$", "-test.count=1", "-test.timeout=10m")
	p.cmd.Env = append(os.Environ(), serverEnv+"="+string(js))
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	})
	select {
	case <-p.out.ready:
	case <-p.exited:
		t.Fatalf("server process %s exited before it was ready: %v\n%s", name, p.err, p.out)
	case <-time.After(60 * time.Second):
		t.Fatalf("server process %s not ready within 60s:\n%s", name, p.out)
	}
	return p
}

// kill ends the process with SIGKILL: no drain, no commit, no group leave.
func (p *serverProcess) kill(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited
}

// stop sends SIGTERM and waits for the graceful stop to finish.
func (p *serverProcess) stop(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("server process %s did not stop within 60s of SIGTERM:\n%s", p.name, p.out)
	}
	if p.err != nil || !strings.Contains(p.out.String(), stoppedLine) {
		t.Fatalf("server process %s: %v\n%s", p.name, p.err, p.out)
	}
}

// lineWriter keeps a process's output and closes ready at readyLine.
type lineWriter struct {
	mu    sync.Mutex
	buf   strings.Builder
	ready chan struct{}
	seen  bool
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(b)
	if !w.seen && strings.Contains(w.buf.String(), readyLine+"\n") {
		w.seen = true
		close(w.ready)
	}
	return len(b), nil
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
