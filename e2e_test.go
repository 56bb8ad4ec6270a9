package vrpc_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/nextpkg/vrpc/example/demo"
)

// The end-to-end cases every bus passes are internal/vtest's (see
// e2e_buses_test.go); this package's tests are those of its own API and
// of what only a whole deployment shows.

func ping(ctx context.Context, conn grpc.ClientConnInterface, msg string, opts ...grpc.CallOption) (*demo.Response, error) {
	return demo.NewDemoClient(conn).Ping(ctx, &demo.Request{Message: msg}, opts...)
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
