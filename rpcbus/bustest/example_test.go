package bustest_test

import (
	"testing"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/bustest"
	"github.com/nextpkg/vrpc/rpcbus/memory"
)

// A backend's tests run the suite with buses that all reach one broker, and
// check for leaked goroutines once every test is done. Here, the memory
// bus: buses that name the same broker share it.
func ExampleRun() {
	// In the backend's tests, beside
	//
	//	func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
	testConformance := func(t *testing.T) {
		t.Parallel()
		brokers := []string{"conformance"}
		bustest.Run(t, func(t *testing.T) rpcbus.Bus {
			b, err := memory.New(rpcbus.Config{Type: "memory", Brokers: brokers})
			if err != nil {
				t.Fatal(err)
			}
			return b
		}, bustest.Features{
			// Only what the bus honestly cannot do, each documented in
			// its package documentation and the README.
		})
	}
	_ = testConformance
}
