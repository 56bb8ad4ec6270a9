package backoff

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestNextDoublesUpToMax(t *testing.T) {
	b := New(Policy{Initial: time.Millisecond, Max: 5 * time.Millisecond})
	want := []time.Duration{1, 2, 4, 5, 5}
	for i, w := range want {
		if got := b.Next(); got != w*time.Millisecond {
			t.Fatalf("pause %d: %v, want %v", i, got, w*time.Millisecond)
		}
	}
	b.Reset()
	if got := b.Next(); got != time.Millisecond {
		t.Fatalf("after Reset: %v, want 1ms", got)
	}
}

func TestJitterStaysInHalfToWhole(t *testing.T) {
	b := New(Policy{Initial: 100 * time.Millisecond, Max: 100 * time.Millisecond, Jitter: true})
	seen := map[time.Duration]bool{}
	for range 200 {
		d := b.Next()
		if d < 50*time.Millisecond || d > 100*time.Millisecond {
			t.Fatalf("pause %v outside [50ms, 100ms]", d)
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Fatalf("only %d distinct pauses in 200: no jitter", len(seen))
	}
}

func TestWaitEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := New(Policy{Initial: time.Hour})
	if b.Wait(ctx) {
		t.Fatal("Wait on a done context reported true")
	}
}

func TestFits(t *testing.T) {
	b := New(Policy{Initial: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if b.Fits(ctx) {
		t.Fatal("a 1s pause fits a 10ms deadline")
	}
	if !b.Fits(context.Background()) {
		t.Fatal("a pause does not fit a context without deadline")
	}
}

func TestRetry(t *testing.T) {
	p := Policy{Initial: time.Microsecond}
	boom := errors.New("boom")

	n := 0
	if err := Retry(context.Background(), p, func() error {
		if n++; n < 3 {
			return boom
		}
		return nil
	}); err != nil || n != 3 {
		t.Fatalf("Retry = %v after %d attempts, want nil after 3", err, n)
	}

	n = 0
	err := Retry(context.Background(), p, func() error { n++; return Permanent(boom) })
	if err != boom || n != 1 {
		t.Fatalf("Retry with a permanent error = %v after %d attempts, want boom after 1", err, n)
	}

	ctx, cancel := context.WithCancel(context.Background())
	n = 0
	err = Retry(ctx, p, func() error {
		if n++; n == 2 {
			cancel()
		}
		return boom
	})
	if !errors.Is(err, boom) || !errors.Is(err, context.Canceled) || n != 2 {
		t.Fatalf("Retry cut by ctx = %v after %d attempts, want boom and Canceled after 2", err, n)
	}
}

// TestReach: attempt timeouts start at First and double up to Max (or
// First, when it is larger), and the waiter is told to log at once, then
// no more than once a LogEvery.
func TestReach(t *testing.T) {
	w := Reach{First: time.Second, Max: 5 * time.Second, LogEvery: time.Minute}.Start()
	var got []time.Duration
	for range 5 {
		got = append(got, w.Timeout())
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	if !slices.Equal(got, want) {
		t.Errorf("timeouts %v, want %v", got, want)
	}
	long := Reach{First: 8 * time.Second, Max: 5 * time.Second}.Start()
	if a, b := long.Timeout(), long.Timeout(); a != 8*time.Second || b != 8*time.Second {
		t.Errorf("First above Max: timeouts %v, %v, want 8s both", a, b)
	}
	now := time.Now()
	if !w.Log(now) || w.Log(now.Add(59*time.Second)) || !w.Log(now.Add(time.Minute)) {
		t.Error("Log: want true at once, false within LogEvery, true after")
	}
}
