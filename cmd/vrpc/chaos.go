package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/pflag"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/faults"
	"github.com/nextpkg/vrpc/internal/inproc"
)

// chaosFlags are the flags of `vrpc bench --chaos`.
type chaosFlags struct {
	on       bool
	interval time.Duration
	dedup    string
	redis    string
}

func addChaosFlags(fl *pflag.FlagSet, c *chaosFlags) {
	fl.BoolVar(&c.on, "chaos", false, "soak test: kill (SIGKILL) and restart a server process every --chaos-interval while calls flow; count calls ok, failed, lost and duplicated")
	fl.DurationVar(&c.interval, "chaos-interval", 5*time.Second, "with --chaos: how often a server is killed and started again")
	fl.StringVar(&c.dedup, "dedup", "redis", "with --chaos: the servers' dedup store: redis (shared by both: no request runs twice), memory (each its own) or none")
	fl.StringVar(&c.redis, "redis", "127.0.0.1:6379", "with --chaos --dedup redis: the Redis server")
}

// chaosServerCommand is the command that runs a server on a configuration
// file: this program's serve command. Tests replace it.
var chaosServerCommand = func(file string) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding this program to run its servers: %w", err)
	}
	return exec.Command(exe, "serve", "-f", file, "--log-level", "error"), nil
}

// chaosReport is the --json output of --chaos.
type chaosReport struct {
	Broker      string         `json:"broker"`
	Dedup       string         `json:"dedup"`
	Servers     int            `json:"servers"`
	Duration    time.Duration  `json:"duration_ns"`
	Interval    time.Duration  `json:"interval_ns"`
	Concurrency int            `json:"concurrency"`
	Deadline    time.Duration  `json:"deadline_ns"`
	Kills       int            `json:"kills"`
	Exits       int            `json:"unexpected_exits"`
	Calls       int            `json:"calls"`
	OK          int            `json:"ok"`
	Failed      int            `json:"failed"`
	FailedBy    map[string]int `json:"failed_by_code"`
	Lost        int            `json:"lost"`
	Duplicated  int            `json:"duplicated"`
	Wrong       int            `json:"wrong"`
	// FailedExecuted counts failed calls the target did run (once).
	FailedExecuted int   `json:"failed_but_executed"`
	Executions     int64 `json:"target_executions"`
}

func runChaos(ctx context.Context, stdout, stderr io.Writer, f benchFlags) error {
	switch {
	case f.bus != inproc.BusEmbedded:
		return configError(fmt.Errorf("--chaos runs its own in-process Kafka for its server processes; --bus %q is not supported with it", f.bus))
	case f.duration <= 0:
		return configError(fmt.Errorf("--duration %v: must be positive", f.duration))
	case f.chaos.interval <= 0:
		return configError(fmt.Errorf("--chaos-interval %v: must be positive", f.chaos.interval))
	case len(f.brokers) > 1:
		return configError(fmt.Errorf("--brokers %q: --chaos runs one broker, at one address", f.brokers))
	case len(f.concurrency) == 0:
		return configError(fmt.Errorf("--concurrency: give at least one value"))
	}
	concurrency := slices.Max(f.concurrency)
	if concurrency < 1 || concurrency > 10000 {
		return configError(fmt.Errorf("--concurrency %d: want 1 to 10000", concurrency))
	}
	dedup := vrpc.DedupConf{Store: f.chaos.dedup, TTL: 2 * time.Minute}
	switch f.chaos.dedup {
	case "memory", "none":
	case "redis":
		if err := pingRedis(ctx, f.chaos.redis); err != nil {
			return configError(fmt.Errorf("--redis %s: %w (start Redis, or run with --dedup memory to see what a store per server allows)", f.chaos.redis, err))
		}
		dedup.Redis = vrpc.RedisConf{Addr: f.chaos.redis, Prefix: fmt.Sprintf("vrpc:chaos:%d:", time.Now().UnixNano())}
	default:
		return configError(fmt.Errorf("--dedup %q: want redis, memory or none", f.chaos.dedup))
	}
	dir, err := os.MkdirTemp("", "vrpc-chaos-")
	if err != nil {
		return failure(err)
	}
	defer os.RemoveAll(dir)

	cfg := faults.ChaosConfig{
		Duration:    f.duration,
		Interval:    f.chaos.interval,
		Concurrency: concurrency,
		Deadline:    faults.DefaultDeadline,
		Grace:       faults.DefaultGrace,
		Dedup:       dedup,
		StartServer: (&chaosServers{dir: dir, stderr: stderr}).start,
		Log:         stderr,
	}
	if len(f.brokers) == 1 {
		cfg.Broker = f.brokers[0]
	}
	fmt.Fprintf(stderr, "vrpc bench --chaos: 2 server processes, one killed (SIGKILL) and restarted every %v, for %v; %d callers, %v deadline each\n",
		cfg.Interval, cfg.Duration, cfg.Concurrency, cfg.Deadline)
	r, err := faults.Chaos(ctx, cfg)
	if err != nil {
		return failure(err)
	}
	rep := chaosReport{
		Broker: r.Broker, Dedup: f.chaos.dedup, Servers: 2, Duration: cfg.Duration, Interval: cfg.Interval,
		Concurrency: cfg.Concurrency, Deadline: cfg.Deadline, Kills: r.Kills, Exits: r.Exits,
		Calls: r.Calls, OK: r.OK, Failed: r.Failed, FailedBy: map[string]int{}, Lost: r.Lost,
		Duplicated: r.Duplicated, Wrong: r.Wrong, FailedExecuted: r.FailedExecuted, Executions: r.Executions,
	}
	for c, n := range r.ByCode {
		rep.FailedBy[codeName(c)] = n
	}
	if f.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return failure(err)
		}
	} else {
		printChaos(stdout, rep, r.Failures)
	}
	if r.Lost > 0 || r.Wrong > 0 || (f.chaos.dedup == "redis" && r.Duplicated > 0) {
		return errReported
	}
	return nil
}

func printChaos(out io.Writer, rep chaosReport, failures []faults.Outcome) {
	fmt.Fprintf(out, "vrpc bench --chaos: in-process Kafka on %s; %d servers (child processes), dedup %s\n",
		rep.Broker, rep.Servers, rep.Dedup)
	fmt.Fprintf(out, "%v of calls (%d callers, %v deadline each); a server killed (SIGKILL) and restarted every %v\n\n",
		rep.Duration, rep.Concurrency, rep.Deadline, rep.Interval)
	var by []string
	for _, c := range slices.Sorted(maps.Keys(rep.FailedBy)) {
		by = append(by, fmt.Sprintf("%s %d", c, rep.FailedBy[c]))
	}
	failed := fmt.Sprint(rep.Failed)
	if len(by) > 0 {
		failed += " (" + strings.Join(by, ", ") + ")"
	}
	for _, row := range [][2]any{
		{"kills", rep.Kills},
		{"unexpected exits", rep.Exits},
		{"calls", rep.Calls},
		{"ok", rep.OK},
		{"failed", failed},
		{"lost", rep.Lost},
		{"duplicated", rep.Duplicated},
		{"wrong", rep.Wrong},
		{"failed but executed", rep.FailedExecuted},
	} {
		fmt.Fprintf(out, "%-20s %v\n", row[0], row[1])
	}
	if len(failures) > 0 {
		fmt.Fprintln(out, "\nfirst failures:")
		for _, o := range failures[:min(len(failures), 10)] {
			fmt.Fprintf(out, "  %v\n", o)
		}
	}
	fmt.Fprintln(out, `
lost: no reply and no status by the deadline plus 2s. duplicated: executed by the
target more than once. failed but executed: the caller got a status (the server
that ran it died before answering) for a call the target ran once.`)
}

func pingRedis(ctx context.Context, addr string) error {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return rdb.Ping(ctx).Err()
}

// chaosServers starts the server processes of a chaos run.
type chaosServers struct {
	dir    string
	stderr io.Writer
	mu     sync.Mutex
	n      int
}

func (s *chaosServers) start(cfg *vrpc.Config) (faults.Process, error) {
	s.mu.Lock()
	s.n++
	n := s.n
	s.mu.Unlock()
	file := filepath.Join(s.dir, fmt.Sprintf("server-%d.json", n))
	b, err := json.Marshal(serverFile(cfg))
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(file, b, 0o600); err != nil {
		return nil, err
	}
	cmd, err := chaosServerCommand(file)
	if err != nil {
		return nil, err
	}
	p := &chaosProcess{cmd: cmd, exited: make(chan struct{})}
	cmd.Stdout = io.Discard
	cmd.Stderr = &p.log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", cmd.Path, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// serverFile is cfg as server.yaml keys (written as JSON, which vrpc serve
// reads too), with the settings a chaos run uses.
func serverFile(cfg *vrpc.Config) map[string]any {
	targets := map[string]any{}
	for name, t := range cfg.Targets {
		targets[name] = map[string]any{"endpoint": t.Endpoint, "timeout": t.Timeout}
	}
	dedup := map[string]any{"store": cfg.Dedup.Store}
	if cfg.Dedup.TTL > 0 {
		dedup["ttl"] = cfg.Dedup.TTL.String()
	}
	if cfg.Dedup.Store == "redis" {
		dedup["redis"] = map[string]any{"addr": cfg.Dedup.Redis.Addr, "prefix": cfg.Dedup.Redis.Prefix}
	}
	return map[string]any{
		"name": cfg.Name,
		"port": cfg.Port,
		"rpc_bus": map[string]any{
			"type": cfg.RpcBus.Type, "brokers": cfg.RpcBus.Brokers, "settings": cfg.RpcBus.Settings,
		},
		"targets":       targets,
		"max_in_flight": cfg.MaxInFlight,
		"drain_timeout": cfg.DrainTimeout.String(),
		"dedup":         dedup,
	}
}

// chaosProcess is a server child process.
type chaosProcess struct {
	cmd    *exec.Cmd
	log    tailBuffer
	exited chan struct{}
	err    error
}

func (p *chaosProcess) Kill() error {
	err := p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
	if err != nil && p.cmd.ProcessState != nil {
		return nil // it had exited already
	}
	return err
}

func (p *chaosProcess) Exited() (bool, error) {
	select {
	case <-p.exited:
		if p.err != nil {
			return true, fmt.Errorf("%w; last output: %s", p.err, p.log.String())
		}
		return true, nil
	default:
		return false, nil
	}
}

// tailBuffer keeps the last 4 KiB written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if len(t.buf) > 4096 {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-4096:]...)
	}
	return len(b), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}
