package amqp

import (
	"strings"
	"testing"

	"github.com/nextpkg/vrpc/rpcbus"
)

// TestNames: queue names and inbox addresses stay within AMQP's 255 bytes
// and unique, whatever the lengths of topics, groups and inbox names.
func TestNames(t *testing.T) {
	t.Parallel()
	if got := queueName("vrpc.requests.echo", "echo-server"); got != "vrpc.requests.echo:echo-server" {
		t.Errorf("queueName = %q", got)
	}
	long := strings.Repeat("t", 200)
	a, b := queueName(long, strings.Repeat("g", 200)), queueName(long, strings.Repeat("g", 199)+"h")
	if len(a) > maxNameBytes || len(b) > maxNameBytes || a == b {
		t.Errorf("long queue names %q and %q: want distinct names of at most %d bytes", a, b, maxNameBytes)
	}
	for _, name := range []string{"vrpc.responses.c1", strings.Repeat("n", 200), strings.Repeat("n", 300)} {
		x, y := inboxAddress(name), inboxAddress(name)
		if x == y || !rpcbus.ValidName(x) {
			t.Errorf("inbox addresses of %d-byte name: %q and %q: want distinct valid names", len(name), x, y)
		}
	}
}
