package benchkit

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// CallFunc makes one call and reports its failure.
type CallFunc func(ctx context.Context) error

// RunConfig says how to drive a path.
type RunConfig struct {
	// Path names the path in the Result.
	Path string
	// Concurrency is the number of workers, each with one call in flight.
	Concurrency int
	// Warmup is run first and not measured.
	Warmup time.Duration
	// Duration is the measured time.
	Duration time.Duration
	// MaxSamples bounds the latency samples kept (reservoir sampling past
	// it); zero means 1<<20.
	MaxSamples int
}

// Result is what Run measured: the calls that completed within the
// measured time.
type Result struct {
	Path        string        `json:"path"`
	Concurrency int           `json:"concurrency"`
	Duration    time.Duration `json:"duration_ns"`
	Calls       int64         `json:"calls"`
	Errors      int64         `json:"errors"`
	// FirstError is the first failure seen, if any.
	FirstError string `json:"first_error,omitempty"`
	// Throughput is successful calls per second.
	Throughput float64       `json:"calls_per_second"`
	P50        time.Duration `json:"p50_ns"`
	P99        time.Duration `json:"p99_ns"`
	Max        time.Duration `json:"max_ns"`
}

// Run drives call with cfg.Concurrency workers in a closed loop: warm-up,
// then cfg.Duration measured, then it waits for the calls in flight. Calls
// that complete within the measured time count; their latencies are the
// samples of the percentiles. Cancelling ctx ends the run early, and the
// result covers the time measured until then.
func Run(ctx context.Context, cfg RunConfig, call CallFunc) Result {
	res, _ := run(ctx, cfg, call)
	return res
}

// run is Run, also returning the sorted latency samples.
func run(ctx context.Context, cfg RunConfig, call CallFunc) (Result, []time.Duration) {
	n := max(cfg.Concurrency, 1)
	maxSamples := cfg.MaxSamples
	if maxSamples <= 0 {
		maxSamples = 1 << 20
	}
	perWorker := max(maxSamples/n, 64)

	start := time.Now()
	from := start.Add(cfg.Warmup)
	to := from.Add(cfg.Duration)
	workers := make([]worker, n)
	var wg sync.WaitGroup
	for i := range workers {
		w := &workers[i]
		w.samples = make([]time.Duration, 0, min(perWorker, 4096))
		w.rng = rand.New(rand.NewPCG(uint64(i), uint64(start.UnixNano())))
		wg.Go(func() {
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(to) {
					return
				}
				err := call(ctx)
				t1 := time.Now()
				if t1.Before(from) || !t1.Before(to) {
					continue
				}
				w.record(t1.Sub(t0), err, perWorker)
			}
		})
	}
	wg.Wait()

	end := time.Now()
	measured := cfg.Duration
	if end.Before(to) { // cancelled
		measured = max(end.Sub(from), 0)
	}
	res := Result{Path: cfg.Path, Concurrency: n, Duration: measured}
	var samples []time.Duration
	for i := range workers {
		w := &workers[i]
		res.Calls += w.calls
		res.Errors += w.errors
		if res.FirstError == "" && w.firstErr != nil {
			res.FirstError = w.firstErr.Error()
		}
		samples = append(samples, w.samples...)
	}
	if measured > 0 {
		res.Throughput = float64(res.Calls-res.Errors) / measured.Seconds()
	}
	slices.Sort(samples)
	res.P50 = Percentile(samples, 0.50)
	res.P99 = Percentile(samples, 0.99)
	if len(samples) > 0 {
		res.Max = samples[len(samples)-1]
	}
	return res, samples
}

// settle is the unmeasured start of each slice of RunRounds after the
// first round: the time for the workers' calls to fill the pipeline again.
const settle = 100 * time.Millisecond

// RunRounds drives each of paths in turn, rounds times over, each time
// for cfg.Duration/rounds after a warm-up (cfg.Warmup in the first round,
// at most 100ms after that), and returns a Result per path over all its
// slices. On a machine whose other load comes and goes, every path so
// sees about the same share of it, and their ratios mean more than those
// of paths measured one after the other. progress, if not nil, is called
// before each slice. Cancelling ctx ends the run early.
func RunRounds(ctx context.Context, cfg RunConfig, rounds int, paths []Path, progress func(round int, p Path)) []Result {
	rounds = max(rounds, 1)
	slice := cfg
	slice.Duration = cfg.Duration / time.Duration(rounds)
	if cfg.MaxSamples > 0 {
		slice.MaxSamples = max(cfg.MaxSamples/rounds, 1)
	} else {
		slice.MaxSamples = max((1<<20)/rounds, 1)
	}
	results := make([]Result, len(paths))
	samples := make([][]time.Duration, len(paths))
	for r := range rounds {
		if r == 1 {
			slice.Warmup = min(cfg.Warmup, settle)
		}
		for i, p := range paths {
			if ctx.Err() != nil {
				break
			}
			if progress != nil {
				progress(r, p)
			}
			slice.Path = p.Name
			res, s := run(ctx, slice, p.Call)
			results[i] = merge(results[i], res)
			samples[i] = append(samples[i], s...)
		}
	}
	for i := range results {
		res := &results[i]
		res.Path, res.Concurrency = paths[i].Name, max(cfg.Concurrency, 1)
		if res.Duration > 0 {
			res.Throughput = float64(res.Calls-res.Errors) / res.Duration.Seconds()
		}
		slices.Sort(samples[i])
		res.P50 = Percentile(samples[i], 0.50)
		res.P99 = Percentile(samples[i], 0.99)
		if n := len(samples[i]); n > 0 {
			res.Max = samples[i][n-1]
		}
	}
	return results
}

// merge adds the counts and time of b to a.
func merge(a, b Result) Result {
	a.Duration += b.Duration
	a.Calls += b.Calls
	a.Errors += b.Errors
	if a.FirstError == "" {
		a.FirstError = b.FirstError
	}
	return a
}

type worker struct {
	calls, errors int64
	firstErr      error
	samples       []time.Duration
	rng           *rand.Rand
}

// record keeps the latency of a successful call, by reservoir sampling
// once the worker holds limit samples.
func (w *worker) record(d time.Duration, err error, limit int) {
	w.calls++
	if err != nil {
		w.errors++
		if w.firstErr == nil {
			w.firstErr = err
		}
		return
	}
	ok := w.calls - w.errors
	if len(w.samples) < limit {
		w.samples = append(w.samples, d)
	} else if j := w.rng.Int64N(ok); j < int64(limit) {
		w.samples[j] = d
	}
}

// Percentile returns the p-th quantile (0 < p <= 1) of sorted samples, the
// smallest sample at or above which a fraction p of them lie; zero for no
// samples.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// TwoHopLimit is the throughput of two stages in sequence at the given
// throughputs: L = 1/(1/a + 1/b). Zero if either is zero.
func TwoHopLimit(a, b float64) float64 {
	if a <= 0 || b <= 0 {
		return 0
	}
	return 1 / (1/a + 1/b)
}

// GatewayLimit is the throughput of a call through the gateway at the
// given raw bus and direct gRPC throughputs: two gRPC hops (caller to
// gateway, server to target) and one bus round trip in sequence,
// L = 1/(2/direct + 1/raw). Zero if either is zero.
func GatewayLimit(raw, direct float64) float64 {
	if raw <= 0 || direct <= 0 {
		return 0
	}
	return 1 / (2/direct + 1/raw)
}
