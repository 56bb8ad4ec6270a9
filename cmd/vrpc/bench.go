package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
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
	chaos       chaosFlags
}

// The values of --via.
const (
	viaClient  = "client"
	viaGateway = "gateway"
)

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

The bus is an in-process Kafka unless --bus says otherwise; everything shares
the machine's CPUs (GOMAXPROCS is printed).

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
  vrpc bench --via gateway
  vrpc bench --chaos --duration 10m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBench(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), f)
		},
		Annotations: map[string]string{logLevelAnnotation: "error"},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.bus, "bus", inproc.BusEmbedded, "bus: embedded (in-process Kafka), kafka (running brokers) or memory")
	fl.StringSliceVar(&f.brokers, "brokers", nil,
		"embedded: the address the broker listens on (default 127.0.0.1 and a free port); kafka: the brokers (default 127.0.0.1:9092); memory: the bus's name")
	fl.DurationVar(&f.duration, "duration", 5*time.Second, "measured time of each path at each concurrency")
	fl.DurationVar(&f.warmup, "warmup", time.Second, "unmeasured time before each measurement")
	fl.IntSliceVar(&f.concurrency, "concurrency", []int{1, 64}, "calls in flight at once, one run per value")
	fl.IntVar(&f.payload, "payload", 64, "size of the request message in bytes")
	fl.BoolVar(&f.json, "json", false, "print the results as JSON instead of a table")
	fl.StringVar(&f.via, "via", viaClient, "client: direct, raw bus and vRPC; gateway: those and the path through the vRPC gateway")
	addChaosFlags(fl, &f.chaos)
	return cmd
}

// benchReport is the --json output.
type benchReport struct {
	Bus        string        `json:"bus"`
	Payload    int           `json:"payload_bytes"`
	Duration   time.Duration `json:"duration_ns"`
	Warmup     time.Duration `json:"warmup_ns"`
	GOMAXPROCS int           `json:"gomaxprocs"`
	Via        string        `json:"via"`
	Runs       []benchRun    `json:"runs"`
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
	// With --via gateway: GatewayLimit is Lg = 1/(2/direct + 1/raw), and
	// the gateway's throughput over direct gRPC's and over Lg.
	GatewayLimit    float64 `json:"gateway_limit,omitempty"`
	GatewayvsDirect float64 `json:"gateway_vs_direct,omitempty"`
	GatewayvsLimit  float64 `json:"gateway_vs_limit,omitempty"`
}

func runBench(ctx context.Context, stdout, stderr io.Writer, f benchFlags) error {
	if f.chaos.on {
		return runChaos(ctx, stdout, stderr, f)
	}
	switch {
	case f.bus != inproc.BusEmbedded && f.bus != inproc.BusKafka && f.bus != inproc.BusMemory:
		return configError(fmt.Errorf("--bus %q: want one of %s", f.bus, strings.Join(inproc.Buses, ", ")))
	case f.duration <= 0:
		return configError(fmt.Errorf("--duration %v: must be positive", f.duration))
	case f.warmup < 0:
		return configError(fmt.Errorf("--warmup %v: must not be negative", f.warmup))
	case f.payload < 0 || f.payload > 1<<20:
		return configError(fmt.Errorf("--payload %d: want 0 to 1048576 bytes", f.payload))
	case f.via != viaClient && f.via != viaGateway:
		return configError(fmt.Errorf("--via %q: want %s or %s", f.via, viaClient, viaGateway))
	case len(f.concurrency) == 0:
		return configError(fmt.Errorf("--concurrency: give at least one value"))
	}
	for _, c := range f.concurrency {
		if c < 1 || c > 10000 {
			return configError(fmt.Errorf("--concurrency %d: want 1 to 10000", c))
		}
	}

	s, err := benchkit.NewSetup(ctx, inproc.Options{Bus: f.bus, Brokers: f.brokers}, f.payload)
	if err != nil {
		return failure(err)
	}
	defer s.Close()
	rep := benchReport{
		Bus: s.Deployment.BusInfo, Payload: f.payload, Duration: f.duration, Warmup: f.warmup,
		GOMAXPROCS: runtime.GOMAXPROCS(0), Via: f.via,
	}
	paths := s.Paths()
	if f.via == viaGateway {
		paths = s.GatewayPaths()
	}
	failed := false
	for _, c := range f.concurrency {
		run := benchRun{Concurrency: c}
		for _, p := range paths {
			fmt.Fprintf(stderr, "vrpc bench: %s at concurrency %d (%v + %v warm-up)\n", p.Name, c, f.duration, f.warmup)
			r := benchkit.Run(ctx, benchkit.RunConfig{Path: p.Name, Concurrency: c, Warmup: f.warmup, Duration: f.duration}, p.Call)
			if ctx.Err() != nil {
				return failure(ctx.Err())
			}
			if r.Errors > 0 {
				failed = true
				fmt.Fprintf(stderr, "vrpc bench: %s: %d of %d calls failed, first: %s\n", p.Name, r.Errors, r.Calls, r.FirstError)
			}
			run.Results = append(run.Results, r)
		}
		direct, raw, vrpc := run.Results[0].Throughput, run.Results[1].Throughput, run.Results[2].Throughput
		run.TwoHopLimit = benchkit.TwoHopLimit(raw, direct)
		run.VRPCvsDirect = ratio(vrpc, direct)
		run.VRPCvsLimit = ratio(vrpc, run.TwoHopLimit)
		if f.via == viaGateway {
			gw := run.Results[3].Throughput
			run.GatewayLimit = benchkit.GatewayLimit(raw, direct)
			run.GatewayvsDirect = ratio(gw, direct)
			run.GatewayvsLimit = ratio(gw, run.GatewayLimit)
		}
		rep.Runs = append(rep.Runs, run)
	}

	if f.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
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

func printBenchTable(out io.Writer, rep benchReport) {
	fmt.Fprintf(out, "vrpc bench: %s; payload %d B; %v per path after %v warm-up; GOMAXPROCS %d\n\n",
		rep.Bus, rep.Payload, rep.Duration, rep.Warmup, rep.GOMAXPROCS)
	line := func(cells ...any) {
		s := fmt.Sprintf("%5v  %-12s %9v %9v %9v %7v %10v %7v", cells...)
		fmt.Fprintln(out, strings.TrimRight(s, " "))
	}
	line("conc", "path", "calls/s", "p50", "p99", "errors", "vs direct", "vs L")
	for _, run := range rep.Runs {
		for _, r := range run.Results {
			vsDirect, vsL := "", ""
			switch r.Path {
			case benchkit.PathVRPC:
				vsDirect, vsL = fmt.Sprintf("%.3f", run.VRPCvsDirect), fmt.Sprintf("%.3f", run.VRPCvsLimit)
			case benchkit.PathGateway:
				vsDirect, vsL = fmt.Sprintf("%.3f", run.GatewayvsDirect), fmt.Sprintf("%.3f", run.GatewayvsLimit)
			}
			line(run.Concurrency, r.Path, fmt.Sprintf("%.0f", r.Throughput), round(r.P50), round(r.P99), r.Errors, vsDirect, vsL)
		}
		line(run.Concurrency, "L", fmt.Sprintf("%.0f", run.TwoHopLimit), "", "", "", "", "")
		if rep.Via == viaGateway {
			line(run.Concurrency, "Lg", fmt.Sprintf("%.0f", run.GatewayLimit), "", "", "", "", "")
		}
	}
	fmt.Fprintln(out, "\nL = 1/(1/raw + 1/direct): the most calls/s two hops in sequence allow.")
	if rep.Via == viaGateway {
		fmt.Fprintln(out, "Lg = 1/(2/direct + 1/raw): the same for the gateway's three hops (two gRPC, one bus).")
		fmt.Fprintln(out, "vs direct, vs L: vRPC's calls/s over direct gRPC's and over L; the gateway's over direct and over Lg.")
		return
	}
	fmt.Fprintln(out, "vs direct, vs L: vRPC's calls/s over direct gRPC's and over L.")
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
