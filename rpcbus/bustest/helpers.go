package bustest

import (
	"context"
	"testing"
	"time"
)

// Helpers for a backend's own tests, beside the suite.

// eventuallyLimit bounds Eventually: generous, since the machine may be
// loaded; it only turns a hang into a failure.
const eventuallyLimit = 30 * time.Second

// Context returns a context that ends after d, or when t ends.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Eventually fails t unless cond becomes true within 30 seconds, checking
// every 2 ms. It is no timing assertion: the limit only turns a hang into
// a failure.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(eventuallyLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
