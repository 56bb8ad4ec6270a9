package vclient_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nextpkg/vrpc/internal/vtest"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/embedded"
	"github.com/nextpkg/vrpc/rpcbus/kafka"
	"github.com/nextpkg/vrpc/vclient"
)

// TestRefused: a client the bus refuses fails in New with an error that
// wraps rpcbus.ErrRefused (not rpcbus.ErrUnavailable: retrying will not
// help), and a call whose request the bus refuses ends with
// PERMISSION_DENIED naming the ACL, long before its deadline.
func TestRefused(t *testing.T) {
	t.Parallel()
	slog.SetDefault(slog.New(slog.DiscardHandler))
	allow := func(name string, op kmsg.ACLOperation) kfake.ACL {
		return kfake.ACL{Resource: kmsg.ACLResourceTypeTopic, Name: name, Pattern: kmsg.ACLResourcePatternTypePrefixed, Operation: op, Allow: true}
	}
	e, err := embedded.Start("127.0.0.1:0", kfake.EnableSASL(), kfake.EnableACLs(), kfake.Superuser("PLAIN", "admin", "admin"),
		// The client may use its reply topics and look the request
		// topics up, but not write them.
		kfake.User("SCRAM-SHA-256", "cli", "pw", allow(vclient.DefaultResponseTopic+".cli.", kmsg.ACLOperationAll),
			allow(vclient.DefaultRequestTopic+".", kmsg.ACLOperationDescribe)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	busWith := func(user, password string) rpcbus.Config {
		return rpcbus.Config{Type: "kafka", Brokers: []string{e.Addr()},
			Settings: map[string]any{"sasl_mechanism": "SCRAM-SHA-256", "username": user, "password": password}}
	}

	t.Run("wrong password", func(t *testing.T) {
		c, err := vclient.New(vclient.Config{ClientID: "cli", RpcBus: busWith("cli", "guess")})
		if err == nil {
			_ = c.Close()
			t.Fatal("New with a wrong password succeeded")
		}
		if !errors.Is(err, rpcbus.ErrUnauthenticated) || errors.Is(err, rpcbus.ErrUnavailable) {
			t.Errorf("New: %v\nwant an error wrapping ErrUnauthenticated, not ErrUnavailable", err)
		}
	})

	t.Run("no write ACL", func(t *testing.T) {
		admin, err := kafka.New(rpcbus.Config{Brokers: []string{e.Addr()},
			Settings: map[string]any{"sasl_mechanism": "PLAIN", "username": "admin", "password": "admin"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = admin.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := admin.CreateTopics(ctx, vclient.DefaultRequestTopic+".demo"); err != nil {
			t.Fatal(err)
		}
		c := vtest.StartClient(t, vclient.Config{ClientID: "cli", RpcBus: busWith("cli", "pw")})
		_, err = c.Call(ctx, "demo", "/demo.Demo/Ping", []byte(`{}`), nil)
		t.Logf("Call: %v", err)
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("Call: %v\nwant PERMISSION_DENIED", err)
		}
		if msg := status.Convert(err).Message(); !strings.Contains(msg, "--operation Write --topic "+vclient.DefaultRequestTopic+".demo") {
			t.Errorf("message %q does not give the ACL to add", msg)
		}
	})
}
