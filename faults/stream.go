package faults

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nextpkg/vrpc/example/demo"
	"github.com/nextpkg/vrpc/vclient"
)

// Caller makes one call carrying msg and returns the message of its reply.
type Caller func(ctx context.Context, msg string) (reply string, err error)

// DemoCaller calls the demo service's Ping on target through c, as an
// application would: a generated stub on a vclient.Conn.
func DemoCaller(c *vclient.Client, target string) Caller {
	stub := demo.NewDemoClient(vclient.NewConn(c, target))
	return func(ctx context.Context, msg string) (string, error) {
		resp, err := stub.Ping(ctx, &demo.Request{Message: msg})
		return resp.GetMessage(), err
	}
}

// Defaults of Load.
const (
	DefaultConcurrency = 16
	DefaultDeadline    = 10 * time.Second
	DefaultGrace       = 2 * time.Second
)

// Load describes a stream of calls.
type Load struct {
	// Name prefixes every message ("<name>-<n>"); streams checked against
	// one Target need distinct names.
	Name string
	// Calls is how many calls to make; 0 makes calls until Stop.
	Calls int
	// Concurrency is how many calls are in flight at once (closed loop).
	Concurrency int
	// Deadline is each call's deadline.
	Deadline time.Duration
	// Grace is how long past its deadline a call may take to return before
	// it counts as lost: no reply and no status.
	Grace time.Duration
}

// Outcome is how one call ended.
type Outcome struct {
	Msg string
	// Code is OK for a reply, else the call's status code.
	Code codes.Code
	// Err is the status message of a failed call.
	Err string
	// Reply is the message of a reply that was not the call's own.
	Reply string
	// Lost: the call had neither returned a reply nor a status by its
	// deadline plus Load.Grace.
	Lost  bool
	Start time.Time
	Took  time.Duration
}

func (o Outcome) String() string {
	switch {
	case o.Lost:
		return fmt.Sprintf("%s: lost (no reply or status %v after it was made)", o.Msg, o.Took)
	case o.Code == codes.OK && o.Reply != o.Msg:
		return fmt.Sprintf("%s: wrong reply %q", o.Msg, o.Reply)
	case o.Code == codes.OK:
		return fmt.Sprintf("%s: ok in %v", o.Msg, o.Took)
	}
	return fmt.Sprintf("%s: %s after %v (%s)", o.Msg, o.Code, o.Took.Round(time.Millisecond), o.Err)
}

// Stream is a running stream of calls.
type Stream struct {
	load   Load
	call   Caller
	next   atomic.Int64
	done   atomic.Int64
	failed atomic.Int64
	stop   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup

	mu       sync.Mutex
	outcomes []Outcome
}

// Start starts making the calls of load with call. Cancelling ctx ends
// the calls in flight (CANCELED) and starts no more.
func Start(ctx context.Context, load Load, call Caller) *Stream {
	if load.Concurrency <= 0 {
		load.Concurrency = DefaultConcurrency
	}
	if load.Deadline <= 0 {
		load.Deadline = DefaultDeadline
	}
	if load.Grace <= 0 {
		load.Grace = DefaultGrace
	}
	s := &Stream{load: load, call: call, stop: make(chan struct{})}
	for range load.Concurrency {
		s.wg.Go(func() { s.worker(ctx) })
	}
	return s
}

func (s *Stream) worker(ctx context.Context) {
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		if ctx.Err() != nil {
			return
		}
		i := s.next.Add(1) - 1
		if s.load.Calls > 0 && i >= int64(s.load.Calls) {
			return
		}
		o := s.one(ctx, fmt.Sprintf("%s-%d", s.load.Name, i))
		s.mu.Lock()
		s.outcomes = append(s.outcomes, o)
		s.mu.Unlock()
		if o.Code != codes.OK || o.Lost {
			s.failed.Add(1)
		}
		s.done.Add(1)
	}
}

// one makes a call and waits for it until its deadline plus the grace.
// A call still running then is lost; its goroutine is left to end when
// the call does.
func (s *Stream) one(ctx context.Context, msg string) Outcome {
	o := Outcome{Msg: msg, Start: time.Now()}
	ctx, cancel := context.WithTimeout(ctx, s.load.Deadline)
	type result struct {
		reply string
		err   error
	}
	res := make(chan result, 1)
	go func() {
		defer cancel()
		reply, err := s.call(ctx, msg)
		res <- result{reply, err}
	}()
	wait := time.NewTimer(s.load.Deadline + s.load.Grace)
	defer wait.Stop()
	select {
	case r := <-res:
		o.Took = time.Since(o.Start)
		if r.err != nil {
			st := status.Convert(r.err)
			o.Code, o.Err = st.Code(), st.Message()
		} else if r.reply != msg {
			o.Reply = r.reply
		}
	case <-wait.C:
		o.Took = time.Since(o.Start)
		o.Lost = true
		o.Code = codes.Unknown
	}
	return o
}

// Completed returns the number of calls that have ended.
func (s *Stream) Completed() int { return int(s.done.Load()) }

// Failed returns the number of calls that have ended without a reply.
func (s *Stream) Failed() int { return int(s.failed.Load()) }

// Stop starts no more calls; Wait still waits for those in flight.
func (s *Stream) Stop() { s.once.Do(func() { close(s.stop) }) }

// Wait waits until every call has ended (or is lost) and returns how each
// ended.
func (s *Stream) Wait() []Outcome {
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.outcomes)
}

// Report is a stream's outcomes checked against the target's counters.
type Report struct {
	// Calls made; OK those answered with their own reply.
	Calls, OK int
	// Failed calls ended with a status, counted by code in ByCode.
	Failed int
	ByCode map[codes.Code]int
	// Lost calls had no reply and no status by deadline plus grace.
	Lost int
	// Wrong calls got a reply that was not theirs, or a reply the target
	// never produced (no execution of their message).
	Wrong int
	// Duplicated calls were executed more than once by the target.
	Duplicated int
	// FailedExecuted counts the failed calls the target did execute
	// (once): the caller got a status for a call that ran.
	FailedExecuted int
	// Failures names every failed, lost and wrong call; Duplicates every
	// message executed more than once, with its executions.
	Failures   []Outcome
	Duplicates map[string]int
}

// Check counts outcomes and looks up each call's executions at tgt.
func Check(outcomes []Outcome, tgt *Target) Report {
	r := Report{Calls: len(outcomes), ByCode: map[codes.Code]int{}, Duplicates: map[string]int{}}
	for _, o := range outcomes {
		n := tgt.Executions(o.Msg)
		if n > 1 {
			r.Duplicated++
			r.Duplicates[o.Msg] = n
		}
		switch {
		case o.Lost:
			r.Lost++
			r.Failures = append(r.Failures, o)
		case o.Code == codes.OK && (o.Reply != "" || n == 0):
			r.Wrong++
			if o.Reply == "" {
				o.Reply = "(a reply the target never produced)"
			}
			r.Failures = append(r.Failures, o)
		case o.Code == codes.OK:
			r.OK++
		default:
			r.Failed++
			r.ByCode[o.Code]++
			if n > 0 {
				r.FailedExecuted++
			}
			r.Failures = append(r.Failures, o)
		}
	}
	slices.SortFunc(r.Failures, func(a, b Outcome) int { return a.Start.Compare(b.Start) })
	return r
}

// String is the one-line summary: calls, ok, failed (by code), lost,
// wrong, duplicated.
func (r Report) String() string {
	var parts []string
	for _, c := range slices.Sorted(maps.Keys(r.ByCode)) {
		parts = append(parts, fmt.Sprintf("%s %d", c, r.ByCode[c]))
	}
	by := ""
	if len(parts) > 0 {
		by = " (" + strings.Join(parts, ", ") + ")"
	}
	return fmt.Sprintf("calls %d: ok %d, failed %d%s, lost %d, wrong %d, duplicated %d, failed but executed %d",
		r.Calls, r.OK, r.Failed, by, r.Lost, r.Wrong, r.Duplicated, r.FailedExecuted)
}
