package faults

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/embedded"
	"github.com/nextpkg/vrpc/vclient"
)

// Process is a vRPC server running in a process of its own.
type Process interface {
	// Kill ends the process at once (SIGKILL: no drain, no commit, no
	// group leave) and waits until it has exited.
	Kill() error
	// Exited reports whether the process has ended by itself, and how.
	Exited() (bool, error)
}

// ChaosConfig is a soak run of `vrpc bench --chaos`.
type ChaosConfig struct {
	// Duration is how long calls are made.
	Duration time.Duration
	// Servers is the number of server processes sharing the target;
	// default 2.
	Servers int
	// Interval is how often a server is killed and started again; default
	// 5s. The servers are killed in turn.
	Interval time.Duration
	// Concurrency, Deadline and Grace are those of the stream of calls
	// (see Load).
	Concurrency int
	Deadline    time.Duration
	Grace       time.Duration
	// Broker is the address the in-process Kafka listens on; default
	// 127.0.0.1 and a free port.
	Broker string
	// Dedup is the servers' dedup store: redis to share it between them.
	Dedup vrpc.DedupConf
	// StartServer starts a server process with cfg and returns once it
	// is running (not necessarily consuming yet).
	StartServer func(cfg *vrpc.Config) (Process, error)
	// Log, if set, gets a line for each kill.
	Log io.Writer
}

// ChaosReport is what a chaos run counted.
type ChaosReport struct {
	Report
	// Kills counts the servers killed (and started again).
	Kills int
	// Exits counts the servers that ended by themselves; each was
	// started again.
	Exits int
	// Executions counts the target's executions, all calls included.
	Executions int64
	// Broker is the in-process Kafka's address.
	Broker string
}

// ChaosTarget is the target name of a chaos run.
const ChaosTarget = "chaos"

// chaosGroup is the servers' consumer group.
const chaosGroup = "vrpc-chaos"

// Chaos runs an in-process Kafka and a counting Target, cfg.Servers vRPC
// servers in processes of their own (through cfg.StartServer), and a
// stream of calls for cfg.Duration, while it kills a server with SIGKILL
// and starts it again every cfg.Interval. It then waits for the calls in
// flight and counts how each ended: ok, failed (by code), lost (no reply
// and no status by its deadline plus grace), and duplicated (executed more
// than once, from the target's counters).
func Chaos(ctx context.Context, cfg ChaosConfig) (rep *ChaosReport, err error) {
	if cfg.Servers <= 0 {
		cfg.Servers = 2
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Second
	}
	if cfg.Broker == "" {
		cfg.Broker = "127.0.0.1:0"
	}
	if cfg.StartServer == nil {
		return nil, errors.New("faults: ChaosConfig.StartServer is not set")
	}
	logf := func(format string, args ...any) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, format+"\n", args...)
		}
	}

	// A member that stops heartbeating is out of the group 2s later.
	broker, err := embedded.Start(cfg.Broker, kfake.GroupMinSessionTimeout(500*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("start the in-process Kafka on %s: %w", cfg.Broker, err)
	}
	defer broker.Close()
	bus := rpcbus.Config{Type: "kafka", Brokers: []string{broker.Addr()},
		Settings: map[string]any{"session_timeout": "2s", "heartbeat_interval": "200ms"}}

	tgt := &Target{Name: "chaos-target"}
	serving, err := tgt.Listen("127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for the target: %w", err)
	}
	defer serving.Stop()

	srvCfg := &vrpc.Config{
		Name:         chaosGroup,
		Port:         -1,
		RpcBus:       bus,
		Targets:      map[string]vrpc.Target{ChaosTarget: {Endpoint: serving.Addr(), Timeout: "30s"}},
		MaxInFlight:  64,
		DrainTimeout: 10 * time.Second,
		Dedup:        cfg.Dedup,
	}
	procs := make([]Process, cfg.Servers)
	defer func() {
		for _, p := range procs {
			if p != nil {
				_ = p.Kill()
			}
		}
	}()
	for i := range procs {
		if procs[i], err = cfg.StartServer(srvCfg); err != nil {
			return nil, fmt.Errorf("start server %d: %w", i, err)
		}
	}

	c, err := vclient.New(vclient.Config{ClientID: "vrpc-chaos", RpcBus: bus})
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, c.Close()) }()
	call := DemoCaller(c, ChaosTarget)
	if err := waitServing(ctx, call); err != nil {
		return nil, fmt.Errorf("the servers did not serve: %w", err)
	}

	rep = &ChaosReport{Broker: broker.Addr()}
	stream := Start(ctx, Load{Name: "chaos", Concurrency: cfg.Concurrency, Deadline: cfg.Deadline, Grace: cfg.Grace}, call)
	end := time.NewTimer(cfg.Duration)
	defer end.Stop()
	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
	next := 0
loop:
	for {
		select {
		case <-end.C:
			break loop
		case <-ctx.Done():
			break loop
		case <-tick.C:
		}
		for i, p := range procs {
			if exited, perr := p.Exited(); exited {
				rep.Exits++
				logf("server %d exited by itself (%v); starting it again", i, perr)
				if procs[i], err = cfg.StartServer(srvCfg); err != nil {
					procs[i] = nil
					stream.Stop()
					stream.Wait()
					return nil, fmt.Errorf("start server %d again: %w", i, err)
				}
			}
		}
		i := next % len(procs)
		next++
		if err := procs[i].Kill(); err != nil {
			logf("kill server %d: %v", i, err)
		}
		rep.Kills++
		logf("%s: killed server %d (SIGKILL) after %d calls; starting it again",
			time.Now().Format("15:04:05"), i, stream.Completed())
		if procs[i], err = cfg.StartServer(srvCfg); err != nil {
			procs[i] = nil
			stream.Stop()
			stream.Wait()
			return nil, fmt.Errorf("start server %d again: %w", i, err)
		}
	}
	stream.Stop()
	rep.Report = Check(stream.Wait(), tgt)
	rep.Executions = tgt.Total()
	return rep, ctx.Err()
}

// waitServing makes calls until one succeeds: the servers have joined.
func waitServing(ctx context.Context, call Caller) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var err error
	for ctx.Err() == nil {
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = call(cctx, "probe")
		ccancel()
		if err == nil {
			return nil
		}
	}
	return err
}
