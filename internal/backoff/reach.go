package backoff

import (
	"context"
	"time"
)

// Reach paces the attempts of a client or server to reach a bus that may
// not be up yet: a pause between attempts (Policy), a timeout for each
// attempt that starts at First and doubles up to Max (an attempt left
// unanswered is a bus not answering), and how often at most the waiter
// says it is still waiting (LogEvery).
type Reach struct {
	Policy     Policy
	First, Max time.Duration
	LogEvery   time.Duration
}

// Start begins a wait paced by r.
func (r Reach) Start() *Reaching {
	return &Reaching{Since: time.Now(), r: r, bo: New(r.Policy), timeout: r.First}
}

// Reaching is one wait of a Reach, for one goroutine.
type Reaching struct {
	// Since is when the wait began.
	Since time.Time

	r       Reach
	bo      *Backoff
	timeout time.Duration
	logged  time.Time
}

// Timeout is the timeout of the next attempt; each call doubles the one
// after, up to Max (or First, if larger).
func (w *Reaching) Timeout() time.Duration {
	t := w.timeout
	w.timeout = min(2*t, max(w.r.Max, w.r.First))
	return t
}

// Log reports whether the waiter should say now that it still waits: at
// most once a LogEvery, the first time at once.
func (w *Reaching) Log(now time.Time) bool {
	if now.Sub(w.logged) < w.r.LogEvery {
		return false
	}
	w.logged = now
	return true
}

// Wait pauses before the next attempt; false if ctx ended first.
func (w *Reaching) Wait(ctx context.Context) bool { return w.bo.Wait(ctx) }
