package vserver_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/nextpkg/vrpc"
	"github.com/nextpkg/vrpc/internal/vtest"
	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/embedded"
	"github.com/nextpkg/vrpc/rpcbus/kafka"
	"github.com/nextpkg/vrpc/vserver"
)

// TestStartRefused: a server whose bus refuses it stops starting at once
// with an error that wraps rpcbus.ErrRefused (not rpcbus.ErrUnavailable)
// and names the fix: a wrong password, a request topic it may not create
// (the brokers do not create topics for it), a group it may not join.
func TestStartRefused(t *testing.T) {
	t.Parallel()
	allow := func(res kmsg.ACLResourceType, name string, op kmsg.ACLOperation) kfake.ACL {
		return kfake.ACL{Resource: res, Name: name, Pattern: kmsg.ACLResourcePatternTypePrefixed, Operation: op, Allow: true}
	}
	e, err := embedded.Start("127.0.0.1:0", kfake.EnableSASL(), kfake.EnableACLs(), kfake.Superuser("PLAIN", "admin", "admin"),
		// May look the request topics up, read and write them, but not
		// create them; may join no group.
		kfake.User("PLAIN", "srv", "pw", allow(kmsg.ACLResourceTypeTopic, "vrpc.requests.", kmsg.ACLOperationDescribe),
			allow(kmsg.ACLResourceTypeTopic, "vrpc.requests.", kmsg.ACLOperationRead),
			allow(kmsg.ACLResourceTypeTopic, "vrpc.requests.", kmsg.ACLOperationWrite)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	bus := func(user, password string) rpcbus.Config {
		return rpcbus.Config{Type: "kafka", Brokers: []string{e.Addr()},
			Settings: map[string]any{"sasl_mechanism": "PLAIN", "username": user, "password": password}}
	}
	// A topic made beforehand needs no Create ACL: the next refusal is
	// the group's.
	admin, err := kafka.New(bus("admin", "admin"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	if err := admin.CreateTopics(t.Context(), "vrpc.requests.made"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, target string
		bus          rpcbus.Config
		want         error
		says         string
	}{
		{"wrong password", "demo", bus("srv", "guess"), rpcbus.ErrUnauthenticated, "rpc_bus.settings.username and password"},
		{"no create ACL", "demo", bus("srv", "pw"), rpcbus.ErrForbidden, "--operation Create --topic vrpc.requests.demo), or create the topic beforehand"},
		{"no group ACL", "made", bus("srv", "pw"), rpcbus.ErrForbidden, "--operation Read --group test-server"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			targets := map[string]vrpc.Target{tc.target: {Endpoint: "127.0.0.1:1"}}
			s, err := vserver.NewServer(vtest.ServerConfig(tc.bus, targets))
			if err != nil {
				t.Fatal(err)
			}
			err = s.Start()
			t.Logf("Start: %v", err)
			if !errors.Is(err, tc.want) || errors.Is(err, rpcbus.ErrUnavailable) {
				t.Errorf("Start: %v\nwant an error wrapping %v, not ErrUnavailable", err, tc.want)
			}
			if err != nil && !strings.Contains(err.Error(), tc.says) {
				t.Errorf("Start: %v\ndoes not say %q", err, tc.says)
			}
		})
	}
}
