package vrpc_test

import (
	"os/exec"
	"strings"
	"testing"
)

// libraryPackages are the packages a program imports to use vRPC; the
// command (cmd/vrpc) and the examples are not among them.
var libraryPackages = []string{".", "./vclient", "./vserver/...", "./vgateway", "./vconfig", "./rpcbus/...", "./codec/..."}

// TestLibraryImportsNoGoZero: go-zero's packages set up the process when
// imported (core/proc's init handles SIGTERM and ends the process 5.5 s
// later; core/sysx's sets GOMAXPROCS), which a library must leave to the
// program. None of them may be linked by a library package.
func TestLibraryImportsNoGoZero(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", append([]string{"list", "-deps"}, libraryPackages...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "github.com/zeromicro/go-zero") {
			t.Errorf("a library package imports %s; see go list -deps", p)
		}
	}
}

// TestLibraryLeavesSignals runs a program that links the library, handles
// SIGTERM itself and sends itself one: it is neither killed nor told
// "Got signal 15, shutting down...".
func TestLibraryLeavesSignals(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program")
	}
	t.Parallel()
	bin := t.TempDir() + "/sigterm"
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/sigterm").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "handled" {
		t.Fatalf("the program: %v, output:\n%s", err, out)
	}
}

// TestServerLinksOnlyWhatItUses: a server program that imports vserver and
// one bus links neither go-redis (the Redis dedup store is
// vserver/redisdedup) nor the OpenTelemetry SDK and its OTLP exporter (the
// tracing plugin is vserver/plugin/tracing): each costs megabytes of a
// binary that an edge box may not have (README: Footprint).
func TestServerLinksOnlyWhatItUses(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", "./internal/footprint/server").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	for _, unwanted := range []string{"github.com/redis/go-redis/v9", "go.opentelemetry.io/otel/sdk/trace",
		"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc", "github.com/twmb/franz-go/pkg/kfake",
		"github.com/nats-io/nats.go"} {
		for _, p := range deps {
			if p == unwanted {
				t.Errorf("the one-bus server program links %s; see go list -deps ./internal/footprint/server", p)
			}
		}
	}
}
