package vrpc_test

import (
	"log/slog"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.DiscardHandler))
	goleak.VerifyTestMain(m,
		// Process-lifetime goroutines go-zero starts in package init (signal
		// handling, CPU sampling for zrpc's load shedding), not ours.
		goleak.IgnoreCurrent(),
	)
}
