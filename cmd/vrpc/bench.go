package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/nextpkg/vrpc/internal/benchkit"
	"github.com/nextpkg/vrpc/internal/inproc"
)

type benchFlags struct {
	bus         string
	brokers     []string
	duration    time.Duration
	warmup      time.Duration
	concurrency []int
	payload     int
	json        bool
	via         string
	cpuProfile  string
	rounds      int
	chaos       chaosFlags
}

// The values of --via.
const (
	viaClient  = "client"
	viaGateway = "gateway"
	viaSigned  = "signed"
)

// busAll is --bus all: every bus in allBuses, one after the other.
const busAll = "all"

// allBuses are the buses of --bus all: every backend, Kafka as the
// in-process broker (kafka would be the same backend on brokers that may
// not be running).
var allBuses = []string{inproc.BusEmbedded, inproc.BusMemory, inproc.BusNATS, inproc.BusAMQP, inproc.BusRedis, inproc.BusMQTT}

func newBenchCmd() *cobra.Command {
	var f benchFlags
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure vRPC against direct gRPC and the bare bus round trip",
		Long: `Measure what a call through vRPC costs, against its two parts on their own.

Over one bus, in this process, at each concurrency it measures:

  direct gRPC  the demo gRPC service called over loopback, no vRPC;
  raw bus      the bus round trip vRPC makes, with no gRPC hop: a request
               envelope published to a topic, a consumer group member
               publishing a reply envelope to the caller's inbox;
  vRPC         vclient -> bus -> vserver -> target and back.

With --via signed it also measures vRPC with every request and reply signed and
verified (security in server.yaml and client.yaml), on a second server beside
the first:

  vRPC hmac     signed with a per-client secret (HMAC-SHA256);
  vRPC ed25519  signed with the client's Ed25519 key, replies with the server's.

With --via gateway it also measures

  gateway      a gRPC caller -> vRPC gateway -> bus -> vserver -> target and
               back: what a client in any language gets (vrpc gateway).

Each path runs in a closed loop (each of --concurrency workers starts its next
call when its last returns) for --duration after --warmup. The table gives
calls/s and the p50 and p99 latencies of the calls completed in that time, and
for vRPC its throughput as a fraction of direct gRPC's and of the two-hop limit
L = 1/(1/raw + 1/direct): a vRPC call is both hops in sequence, so L is the
most the parts allow. A gateway call makes two gRPC hops and a bus round trip,
so its limit is Lg = 1/(2/direct + 1/raw).

The bus is an in-process Kafka unless --bus says otherwise: kafka (running
brokers), memory, nats (NATS with JetStream), amqp (RabbitMQ), redis (Redis
Streams) or mqtt (an MQTT 5 broker); the servers default to their usual ports
on 127.0.0.1 (--brokers overrides). On nats, amqp, redis and mqtt every name the
run creates is unique to it, and removed at the end. --bus all measures every
bus but kafka in turn and prints one table, with each bus's vRPC p50 over the
sum of its raw and direct p50s (the latency vRPC adds to its two hops).
Everything shares the machine's CPUs (GOMAXPROCS is printed), the servers of
the buses too. On a machine with other work, --rounds N runs the paths in turn
N times over, each for --duration/N, so that the load from elsewhere falls on
every path alike and the ratios stay meaningful; --cpuprofile writes a CPU
profile of each path.

With --chaos it is a soak test instead: an in-process Kafka, a counting demo
target and two vRPC servers, each a child process (vrpc serve), share the
target while callers (as many as the largest --concurrency, each call with a
10s deadline) make calls for --duration, and every --chaos-interval a server
is killed with SIGKILL (no drain, no commit) and started again. At the end it
prints the calls ok, failed (by code), lost (no reply and no status by the
deadline plus 2s) and duplicated (executed more than once, from the target's
counters). It exits 1 if a call was lost or answered wrongly, or, with
--dedup redis, run twice.`,
		Example: `  vrpc bench
  vrpc bench --duration 10s --concurrency 1,16,64 --payload 1024
  vrpc bench --bus kafka --brokers localhost:9092 --json
  vrpc bench --bus nats --brokers nats://127.0.0.1:4222
  vrpc bench --bus all --duration 10s --rounds 10
  vrpc bench --via gateway
  vrpc bench --via signed --concurrency 64 --rounds 10 --duration 20s
  vrpc bench --chaos --duration 10m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBench(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), f)
		},
		Annotations: map[string]string{logLevelAnnotation: "error"},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.bus, "bus", inproc.BusEmbedded,
		"bus: embedded (in-process Kafka), kafka (running brokers), memory, nats, amqp, redis, mqtt, or all (each but kafka in turn)")
	fl.StringSliceVar(&f.brokers, "brokers", nil,
		"embedded: the address the broker listens on (default 127.0.0.1 and a free port); memory: the bus's name; "+
			"the others: the servers (default 127.0.0.1:9092 kafka, :4222 nats, :5672 amqp, :6379 redis, :1883 mqtt)")
	fl.DurationVar(&f.duration, "duration", 5*time.Second, "measured time of each path at each concurrency")
	fl.DurationVar(&f.warmup, "warmup", time.Second, "unmeasured time before each measurement")
	fl.IntSliceVar(&f.concurrency, "concurrency", []int{1, 64}, "calls in flight at once, one run per value")
	fl.IntVar(&f.payload, "payload", 64, "size of the request message in bytes")
	fl.BoolVar(&f.json, "json", false, "print the results as JSON instead of a table")
	fl.StringVar(&f.via, "via", viaClient, "client: direct, raw bus and vRPC; gateway: those and the path through the vRPC gateway; signed: those and vRPC signed with HMAC and with Ed25519")
	fl.IntVar(&f.rounds, "rounds", 1,
		"split each path's --duration into this many slices, run in turn with the other paths' (after a first full warm-up, 100ms each), so that every path sees the same machine")
	fl.StringVar(&f.cpuProfile, "cpuprofile", "",
		"write a CPU profile of each path's run (warm-up included) to <this prefix>-<bus>-c<concurrency>-<path>.pprof, for go tool pprof")
	addChaosFlags(fl, &f.chaos)
	return cmd
}

// benchReport is the --json output.
type benchReport struct {
	// Type is the --bus value; Bus describes the bus for people.
	Type     string        `json:"type"`
	Bus      string        `json:"bus"`
	Payload  int           `json:"payload_bytes"`
	Duration time.Duration `json:"duration_ns"`
	Warmup   time.Duration `json:"warmup_ns"`
	// Rounds is --rounds: each path ran in that many slices, in turn with
	// the others.
	Rounds     int        `json:"rounds"`
	GOMAXPROCS int        `json:"gomaxprocs"`
	Via        string     `json:"via"`
	Runs       []benchRun `json:"runs"`
	// Error is why the bus could not be measured (--bus all goes on
	// with the next).
	Error string `json:"error,omitempty"`
}

// benchAllReport is the --json output of --bus all.
type benchAllReport struct {
	Buses []benchReport `json:"buses"`
}

// benchRun is the three paths at one concurrency.
type benchRun struct {
	Concurrency int               `json:"concurrency"`
	Results     []benchkit.Result `json:"results"`
	// TwoHopLimit is L = 1/(1/raw + 1/direct) in calls/s.
	TwoHopLimit float64 `json:"two_hop_limit"`
	// VRPCvsDirect and VRPCvsLimit are vRPC's throughput over direct gRPC's
	// and over L.
	VRPCvsDirect float64 `json:"vrpc_vs_direct"`
	VRPCvsLimit  float64 `json:"vrpc_vs_limit"`
	// P50Overhead is vRPC's p50 less the raw and direct p50s: the latency
	// a call adds to its two hops.
	P50Overhead time.Duration `json:"vrpc_p50_overhead_ns"`
	// With --via gateway: GatewayLimit is Lg = 1/(2/direct + 1/raw), and
	// the gateway's throughput over direct gRPC's and over Lg.
	GatewayLimit    float64 `json:"gateway_limit,omitempty"`
	GatewayvsDirect float64 `json:"gateway_vs_direct,omitempty"`
	GatewayvsLimit  float64 `json:"gateway_vs_limit,omitempty"`
	// With --via signed: the signed paths' throughput over unsigned vRPC's.
	HMACvsUnsigned    float64 `json:"hmac_vs_unsigned,omitempty"`
	Ed25519vsUnsigned float64 `json:"ed25519_vs_unsigned,omitempty"`
}

func runBench(ctx context.Context, stdout, stderr io.Writer, f benchFlags) error {
	if f.chaos.on {
		return runChaos(ctx, stdout, stderr, f)
	}
	switch {
	case f.bus != busAll && !slices.Contains(inproc.Buses, f.bus):
		return configError(fmt.Errorf("--bus %q: want one of %s, or %s", f.bus, strings.Join(inproc.Buses, ", "), busAll))
	case f.bus == busAll && len(f.brokers) > 0:
		return configError(fmt.Errorf("--brokers %q: --bus all uses each bus's default address; measure a bus elsewhere with --bus <type> --brokers", f.brokers))
	case f.duration <= 0:
		return configError(fmt.Errorf("--duration %v: must be positive", f.duration))
	case f.warmup < 0:
		return configError(fmt.Errorf("--warmup %v: must not be negative", f.warmup))
	case f.payload < 0 || f.payload > 1<<20:
		return configError(fmt.Errorf("--payload %d: want 0 to 1048576 bytes", f.payload))
	case f.via != viaClient && f.via != viaGateway && f.via != viaSigned:
		return configError(fmt.Errorf("--via %q: want %s, %s or %s", f.via, viaClient, viaGateway, viaSigned))
	case len(f.concurrency) == 0:
		return configError(fmt.Errorf("--concurrency: give at least one value"))
	}
	for _, c := range f.concurrency {
		if c < 1 || c > 10000 {
			return configError(fmt.Errorf("--concurrency %d: want 1 to 10000", c))
		}
	}
	switch {
	case f.rounds < 1 || f.rounds > 1000:
		return configError(fmt.Errorf("--rounds %d: want 1 to 1000", f.rounds))
	case f.rounds > 1 && f.duration/time.Duration(f.rounds) < 10*time.Millisecond:
		return configError(fmt.Errorf("--rounds %d: slices of %v are too short; give a longer --duration or fewer rounds", f.rounds, f.duration/time.Duration(f.rounds)))
	case f.rounds > 1 && f.cpuProfile != "":
		return configError(fmt.Errorf("--cpuprofile profiles each path on its own: use it with --rounds 1"))
	}

	if f.bus != busAll {
		rep, failed, err := benchBus(ctx, stderr, f, f.bus)
		if err != nil {
			return failure(err)
		}
		if f.json {
			if err := writeJSON(stdout, rep); err != nil {
				return failure(err)
			}
		} else {
			printBenchTable(stdout, rep)
		}
		if failed {
			return failure(fmt.Errorf("some calls failed (see above)"))
		}
		return nil
	}

	var all benchAllReport
	failed := false
	for _, bus := range allBuses {
		rep, bad, err := benchBus(ctx, stderr, f, bus)
		if ctx.Err() != nil {
			return failure(ctx.Err())
		}
		if err != nil {
			// A bus whose server is not running does not stop the
			// others from being measured.
			fmt.Fprintf(stderr, "vrpc bench: %s: %v\n", bus, err)
			rep.Error = err.Error()
			bad = true
		}
		failed = failed || bad
		all.Buses = append(all.Buses, rep)
	}
	if f.json {
		if err := writeJSON(stdout, all); err != nil {
			return failure(err)
		}
	} else {
		printBenchAllTable(stdout, all, f)
	}
	if failed {
		return failure(fmt.Errorf("some buses or calls failed (see above)"))
	}
	return nil
}

// benchBus measures the paths over one bus at each concurrency. failed
// reports calls that failed; err, a bus that could not be set up (rep
// then names the bus only).
func benchBus(ctx context.Context, stderr io.Writer, f benchFlags, bus string) (rep benchReport, failed bool, err error) {
	rep = benchReport{
		Type: bus, Bus: bus, Payload: f.payload, Duration: f.duration, Warmup: f.warmup, Rounds: f.rounds,
		GOMAXPROCS: runtime.GOMAXPROCS(0), Via: f.via,
	}
	fmt.Fprintf(stderr, "vrpc bench: setting up %s\n", bus)
	s, err := benchkit.NewSetup(ctx, inproc.Options{Bus: bus, Brokers: f.brokers}, f.payload)
	if err != nil {
		return rep, false, err
	}
	defer func() {
		if cerr := s.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("%s: tear down: %w", bus, cerr)
		}
	}()
	rep.Bus = s.Deployment.BusInfo
	paths := s.Paths()
	switch f.via {
	case viaGateway:
		paths = s.GatewayPaths()
	case viaSigned:
		if paths, err = s.SignedPaths(ctx); err != nil {
			return rep, false, err
		}
	}
	for _, c := range f.concurrency {
		run := benchRun{Concurrency: c}
		if run.Results, err = measure(ctx, stderr, f, bus, c, paths); err != nil {
			return rep, failed, err
		}
		for _, r := range run.Results {
			if r.Errors > 0 {
				failed = true
				fmt.Fprintf(stderr, "vrpc bench: %s: %s: %d of %d calls failed, first: %s\n", bus, r.Path, r.Errors, r.Calls, r.FirstError)
			}
		}
		direct, raw, vrpc := run.Results[0], run.Results[1], run.Results[2]
		run.TwoHopLimit = benchkit.TwoHopLimit(raw.Throughput, direct.Throughput)
		run.VRPCvsDirect = ratio(vrpc.Throughput, direct.Throughput)
		run.VRPCvsLimit = ratio(vrpc.Throughput, run.TwoHopLimit)
		run.P50Overhead = vrpc.P50 - raw.P50 - direct.P50
		if f.via == viaSigned {
			run.HMACvsUnsigned = ratio(run.Results[3].Throughput, vrpc.Throughput)
			run.Ed25519vsUnsigned = ratio(run.Results[4].Throughput, vrpc.Throughput)
		}
		if f.via == viaGateway {
			gw := run.Results[3].Throughput
			run.GatewayLimit = benchkit.GatewayLimit(raw.Throughput, direct.Throughput)
			run.GatewayvsDirect = ratio(gw, direct.Throughput)
			run.GatewayvsLimit = ratio(gw, run.GatewayLimit)
		}
		rep.Runs = append(rep.Runs, run)
	}
	return rep, failed, nil
}

// measure runs paths at concurrency c: one after the other, or with
// --rounds in turn.
func measure(ctx context.Context, stderr io.Writer, f benchFlags, bus string, c int, paths []benchkit.Path) ([]benchkit.Result, error) {
	cfg := benchkit.RunConfig{Concurrency: c, Warmup: f.warmup, Duration: f.duration}
	if f.rounds > 1 {
		fmt.Fprintf(stderr, "vrpc bench: %s: concurrency %d, %d rounds of each path (%v each; %v warm-up in the first)\n",
			bus, c, f.rounds, f.duration/time.Duration(f.rounds), f.warmup)
		res := benchkit.RunRounds(ctx, cfg, f.rounds, paths, nil)
		return res, ctx.Err()
	}
	var res []benchkit.Result
	for _, p := range paths {
		fmt.Fprintf(stderr, "vrpc bench: %s: %s at concurrency %d (%v + %v warm-up)\n", bus, p.Name, c, f.duration, f.warmup)
		stop, err := startProfile(f.cpuProfile, bus, c, p.Name)
		if err != nil {
			return nil, err
		}
		cfg.Path = p.Name
		r := benchkit.Run(ctx, cfg, p.Call)
		if err := stop(); err != nil {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		res = append(res, r)
	}
	return res, nil
}

// startProfile starts a CPU profile of one path's run, if --cpuprofile
// asks for them, and returns what ends it.
func startProfile(prefix, bus string, concurrency int, path string) (stop func() error, err error) {
	if prefix == "" {
		return func() error { return nil }, nil
	}
	name := fmt.Sprintf("%s-%s-c%d-%s.pprof", prefix, bus, concurrency, strings.ReplaceAll(strings.ToLower(path), " ", "-"))
	file, err := os.Create(name)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(file); err != nil {
		file.Close()
		return nil, fmt.Errorf("--cpuprofile %s: %w", name, err)
	}
	return func() error {
		pprof.StopCPUProfile()
		return file.Close()
	}, nil
}

func writeJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printBenchTable(out io.Writer, rep benchReport) {
	fmt.Fprintf(out, "vrpc bench: %s; payload %d B; %s; GOMAXPROCS %d\n\n",
		rep.Bus, rep.Payload, describeTiming(rep.Duration, rep.Warmup, rep.Rounds), rep.GOMAXPROCS)
	line := func(cells ...any) {
		s := fmt.Sprintf("%5v  %-12s %9v %9v %9v %7v %10v %7v %10v %12v", cells...)
		fmt.Fprintln(out, strings.TrimRight(s, " "))
	}
	extra := ""
	if rep.Via == viaSigned {
		extra = "vs unsigned"
	}
	line("conc", "path", "calls/s", "p50", "p99", "errors", "vs direct", "vs L", "p50 over", extra)
	for _, run := range rep.Runs {
		for _, r := range run.Results {
			vsDirect, vsL, over, vsUnsigned := "", "", "", ""
			switch r.Path {
			case benchkit.PathHMAC:
				vsUnsigned = fmt.Sprintf("%.3f", run.HMACvsUnsigned)
			case benchkit.PathEd25519:
				vsUnsigned = fmt.Sprintf("%.3f", run.Ed25519vsUnsigned)
			case benchkit.PathVRPC:
				vsDirect, vsL = fmt.Sprintf("%.3f", run.VRPCvsDirect), fmt.Sprintf("%.3f", run.VRPCvsLimit)
				over = signed(run.P50Overhead)
			case benchkit.PathGateway:
				vsDirect, vsL = fmt.Sprintf("%.3f", run.GatewayvsDirect), fmt.Sprintf("%.3f", run.GatewayvsLimit)
			}
			line(run.Concurrency, r.Path, fmt.Sprintf("%.0f", r.Throughput), round(r.P50), round(r.P99), r.Errors, vsDirect, vsL, over, vsUnsigned)
		}
		line(run.Concurrency, "L", fmt.Sprintf("%.0f", run.TwoHopLimit), "", "", "", "", "", "", "")
		if rep.Via == viaGateway {
			line(run.Concurrency, "Lg", fmt.Sprintf("%.0f", run.GatewayLimit), "", "", "", "", "", "", "")
		}
	}
	fmt.Fprintln(out, "\nL = 1/(1/raw + 1/direct): the most calls/s two hops in sequence allow.")
	fmt.Fprintln(out, "p50 over: vRPC's p50 less the raw bus's and direct gRPC's, what vRPC adds to its two hops.")
	if rep.Via == viaGateway {
		fmt.Fprintln(out, "Lg = 1/(2/direct + 1/raw): the same for the gateway's three hops (two gRPC, one bus).")
		fmt.Fprintln(out, "vs direct, vs L: vRPC's calls/s over direct gRPC's and over L; the gateway's over direct and over Lg.")
		return
	}
	fmt.Fprintln(out, "vs direct, vs L: vRPC's calls/s over direct gRPC's and over L.")
	if rep.Via == viaSigned {
		fmt.Fprintln(out, "vs unsigned: a signed path's calls/s over unsigned vRPC's (every request and reply signed and verified).")
	}
}

// printBenchAllTable prints --bus all: a row per bus and concurrency.
func printBenchAllTable(out io.Writer, all benchAllReport, f benchFlags) {
	fmt.Fprintf(out, "vrpc bench --bus all: payload %d B; %s; GOMAXPROCS %d\n\n",
		f.payload, describeTiming(f.duration, f.warmup, f.rounds), runtime.GOMAXPROCS(0))
	for _, rep := range all.Buses {
		fmt.Fprintf(out, "  %-9s %s\n", rep.Type, rep.Bus)
	}
	fmt.Fprintln(out)
	line := func(cells ...any) {
		s := fmt.Sprintf("%-9s %5v | %8v %8v %8v | %8v %8v %8v | %8v %8v %8v | %7v %7v %9v", cells...)
		fmt.Fprintln(out, strings.TrimRight(s, " "))
	}
	fmt.Fprintf(out, "%-15s | %-26s | %-26s | %-26s | %7s %7s %9s\n", "", "direct gRPC", "raw bus", "vRPC", "vRPC /", "vRPC /", "vRPC p50")
	line("bus", "conc", "calls/s", "p50", "p99", "calls/s", "p50", "p99", "calls/s", "p50", "p99", "direct", "L", "over")
	for _, rep := range all.Buses {
		name := rep.Type
		if rep.Error != "" {
			fmt.Fprintf(out, "%-9s not measured: %s\n", name, rep.Error)
			continue
		}
		for _, run := range rep.Runs {
			cells := []any{name, run.Concurrency}
			for _, r := range run.Results[:3] {
				cells = append(cells, fmt.Sprintf("%.0f", r.Throughput), round(r.P50), round(r.P99))
			}
			cells = append(cells, fmt.Sprintf("%.3f", run.VRPCvsDirect), fmt.Sprintf("%.3f", run.VRPCvsLimit), signed(run.P50Overhead))
			line(cells...)
		}
	}
	fmt.Fprintln(out, "\nL = 1/(1/raw + 1/direct): the most calls/s two hops in sequence allow.")
	fmt.Fprintln(out, "vRPC p50 over: vRPC's p50 less the raw bus's and direct gRPC's, what vRPC adds to its two hops.")
}

func describeTiming(d, warmup time.Duration, rounds int) string {
	if rounds <= 1 {
		return fmt.Sprintf("%v per path after %v warm-up", d, warmup)
	}
	return fmt.Sprintf("%v per path in %d rounds of the paths in turn, after %v warm-up", d, rounds, warmup)
}

// signed formats d with its sign, rounded as the table's latencies are.
func signed(d time.Duration) string {
	if d < 0 {
		return "-" + round(-d).String()
	}
	return "+" + round(d).String()
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
