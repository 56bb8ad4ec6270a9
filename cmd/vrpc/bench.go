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
}

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

Each path runs in a closed loop (each of --concurrency workers starts its next
call when its last returns) for --duration after --warmup. The table gives
calls/s and the p50 and p99 latencies of the calls completed in that time, and
for vRPC its throughput as a fraction of direct gRPC's and of the two-hop limit
L = 1/(1/raw + 1/direct): a vRPC call is both hops in sequence, so L is the
most the parts allow.

The bus is an in-process Kafka unless --bus says otherwise; everything shares
the machine's CPUs (GOMAXPROCS is printed).`,
		Example: `  vrpc bench
  vrpc bench --duration 10s --concurrency 1,16,64 --payload 1024
  vrpc bench --bus kafka --brokers localhost:9092 --json`,
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
	return cmd
}

// benchReport is the --json output.
type benchReport struct {
	Bus        string        `json:"bus"`
	Payload    int           `json:"payload_bytes"`
	Duration   time.Duration `json:"duration_ns"`
	Warmup     time.Duration `json:"warmup_ns"`
	GOMAXPROCS int           `json:"gomaxprocs"`
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
}

func runBench(ctx context.Context, stdout, stderr io.Writer, f benchFlags) error {
	switch {
	case f.bus != inproc.BusEmbedded && f.bus != inproc.BusKafka && f.bus != inproc.BusMemory:
		return configError(fmt.Errorf("--bus %q: want one of %s", f.bus, strings.Join(inproc.Buses, ", ")))
	case f.duration <= 0:
		return configError(fmt.Errorf("--duration %v: must be positive", f.duration))
	case f.warmup < 0:
		return configError(fmt.Errorf("--warmup %v: must not be negative", f.warmup))
	case f.payload < 0 || f.payload > 1<<20:
		return configError(fmt.Errorf("--payload %d: want 0 to 1048576 bytes", f.payload))
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
		GOMAXPROCS: runtime.GOMAXPROCS(0),
	}
	failed := false
	for _, c := range f.concurrency {
		run := benchRun{Concurrency: c}
		for _, p := range s.Paths() {
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
			if r.Path == benchkit.PathVRPC {
				vsDirect, vsL = fmt.Sprintf("%.3f", run.VRPCvsDirect), fmt.Sprintf("%.3f", run.VRPCvsLimit)
			}
			line(run.Concurrency, r.Path, fmt.Sprintf("%.0f", r.Throughput), round(r.P50), round(r.P99), r.Errors, vsDirect, vsL)
		}
		line(run.Concurrency, "L", fmt.Sprintf("%.0f", run.TwoHopLimit), "", "", "", "", "")
	}
	fmt.Fprintln(out, "\nL = 1/(1/raw + 1/direct): the most calls/s two hops in sequence allow.")
	fmt.Fprintln(out, "vs direct, vs L: vRPC's calls/s over direct gRPC's and over L.")
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
