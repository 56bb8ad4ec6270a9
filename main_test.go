package vrpc_test

import (
	"testing"

	"github.com/zeromicro/go-zero/core/logx"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	logx.Disable()
	goleak.VerifyTestMain(m,
		// Process-lifetime goroutines go-zero starts in package init (signal
		// handling, CPU sampling for zrpc's load shedding), not ours.
		goleak.IgnoreCurrent(),
	)
}
