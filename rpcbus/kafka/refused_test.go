package kafka_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/nextpkg/vrpc/rpcbus"
	"github.com/nextpkg/vrpc/rpcbus/embedded"
	"github.com/nextpkg/vrpc/rpcbus/kafka"
)

// refusedWithin is how long a refusal may take to show: far less than the
// contexts the operations are given, so that an error is a refusal seen,
// not a context that ran out.
const refusedWithin = 30 * time.Second

// wantRefused fails unless err wraps want (an rpcbus.ErrRefused family
// error), does not wrap rpcbus.ErrUnavailable or a context error, and
// mentions every one of hints.
func wantRefused(t *testing.T, what string, err, want error, hints ...string) {
	t.Helper()
	t.Logf("%s: %v", what, err)
	switch {
	case err == nil:
		t.Errorf("%s: no error, want one wrapping %v", what, want)
		return
	case !errors.Is(err, want):
		t.Errorf("%s: %v\nwant an error wrapping %v", what, err, want)
	case errors.Is(err, rpcbus.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		t.Errorf("%s: %v\nwraps ErrUnavailable or a context error: a refusal must read as permanent", what, err)
	}
	for _, h := range hints {
		if !strings.Contains(err.Error(), h) {
			t.Errorf("%s: %v\ndoes not mention %q", what, err, h)
		}
	}
}

// startBroker starts an embedded broker with kfake options, closed with
// the test.
func startBroker(t *testing.T, opts ...kfake.Opt) *embedded.Broker {
	t.Helper()
	e, err := embedded.Start("127.0.0.1:0", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// busOn returns a kafka bus of the broker at addr with settings, closed
// with the test.
func busOn(t *testing.T, addr string, settings map[string]any) *kafka.Bus {
	t.Helper()
	b, err := kafka.New(rpcbus.Config{Brokers: []string{addr}, Settings: settings})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// TestRefusedReplicationFactor: on a one-broker cluster, a reply topic or
// request topic that needs replication factor 3 fails at once, naming the
// setting, as a refusal rather than an outage.
func TestRefusedReplicationFactor(t *testing.T) {
	t.Parallel()
	e := startBroker(t)
	b := busOn(t, e.Addr(), map[string]any{"replication_factor": 3})
	_, err := b.Inbox(ctxFor(t, refusedWithin), name(t, "replies"), func(*rpcbus.Message) {})
	wantRefused(t, "Inbox", err, rpcbus.ErrRefused, "replication_factor 3", "INVALID_REPLICATION_FACTOR", "lower replication_factor")
	_, err = b.Subscribe(ctxFor(t, refusedWithin), rpcbus.SubscribeOptions{Topics: []string{name(t, "requests")}, Group: name(t, "group")},
		func(d *rpcbus.Delivery) { d.Ack() })
	wantRefused(t, "Subscribe", err, rpcbus.ErrRefused, "replication_factor 3")
	if errors.Is(err, rpcbus.ErrUnauthenticated) || errors.Is(err, rpcbus.ErrForbidden) {
		t.Errorf("Subscribe: %v: a cluster setting, not credentials or ACLs", err)
	}
}

// TestRefusedSASL: with a wrong password every operation that talks to
// the brokers fails within seconds, naming the user and the settings to
// check, for each mechanism. (kfake closes the connection where Kafka
// answers SASL_AUTHENTICATION_FAILED: the bus recognises both.)
func TestRefusedSASL(t *testing.T) {
	t.Parallel()
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			t.Parallel()
			e := startBroker(t, kfake.EnableSASL(), kfake.Superuser(mech, "vrpc", "s3cret"))
			b := busOn(t, e.Addr(), map[string]any{"sasl_mechanism": mech, "username": "vrpc", "password": "guess"})
			hints := []string{`SASL user "vrpc"`, "rpc_bus.settings.username and password"}
			err := b.Publish(ctxFor(t, refusedWithin), name(t, "requests"), &rpcbus.Message{Value: []byte("x")})
			wantRefused(t, "Publish", err, rpcbus.ErrUnauthenticated, hints...)
			_, err = b.Inbox(ctxFor(t, refusedWithin), name(t, "replies"), func(*rpcbus.Message) {})
			wantRefused(t, "Inbox", err, rpcbus.ErrUnauthenticated, hints...)
			err = b.CreateTopics(ctxFor(t, refusedWithin), name(t, "requests"))
			wantRefused(t, "CreateTopics", err, rpcbus.ErrUnauthenticated, hints...)
			err = b.Ping(ctxFor(t, refusedWithin))
			wantRefused(t, "Ping", err, rpcbus.ErrUnauthenticated, hints...)
		})
	}
}

// TestRefusedACLs: a user without the ACLs vRPC needs gets an error
// naming the user, the operation, the resource and the kafka-acls command,
// for each: publishing to a topic it may not describe or not write,
// creating a topic, joining a group, opening an inbox.
func TestRefusedACLs(t *testing.T) {
	t.Parallel()
	allow := func(res kmsg.ACLResourceType, name string, pattern kmsg.ACLResourcePatternType, op kmsg.ACLOperation) kfake.ACL {
		return kfake.ACL{Resource: res, Name: name, Pattern: pattern, Operation: op, Allow: true}
	}
	topic := kmsg.ACLResourceTypeTopic
	literal, prefixed := kmsg.ACLResourcePatternTypeLiteral, kmsg.ACLResourcePatternTypePrefixed
	e := startBroker(t, kfake.EnableSASL(), kfake.EnableACLs(), kfake.Superuser("PLAIN", "admin", "admin"),
		kfake.User("PLAIN", "app", "pw",
			allow(topic, "ok.", prefixed, kmsg.ACLOperationAll),
			allow(topic, "readonly", literal, kmsg.ACLOperationDescribe),
			allow(topic, "nocreate.", prefixed, kmsg.ACLOperationDescribe),
		))
	admin := busOn(t, e.Addr(), map[string]any{"sasl_mechanism": "PLAIN", "username": "admin", "password": "admin"})
	if err := admin.CreateTopics(ctxFor(t, refusedWithin), "secret", "readonly", "ok.existing"); err != nil {
		t.Fatal(err)
	}
	app := busOn(t, e.Addr(), map[string]any{"sasl_mechanism": "PLAIN", "username": "app", "password": "pw", "heartbeat_interval": "100ms"})
	msg := &rpcbus.Message{Value: []byte("x")}

	err := app.Publish(ctxFor(t, refusedWithin), "secret", msg)
	wantRefused(t, "Publish to a topic it may not describe", err, rpcbus.ErrForbidden,
		"user app may not Describe topic \"secret\"", "kafka-acls.sh", "--allow-principal User:app --operation Describe --topic secret")
	err = app.Publish(ctxFor(t, refusedWithin), "readonly", msg)
	wantRefused(t, "Publish to a topic it may not write", err, rpcbus.ErrForbidden,
		"may not Write topic \"readonly\"", "--operation Write --topic readonly")
	err = app.CreateTopics(ctxFor(t, refusedWithin), "nocreate.requests")
	wantRefused(t, "CreateTopics without Create", err, rpcbus.ErrForbidden, "may not Create", "--operation Create")
	// A topic that exists needs no right to create topics.
	if err := app.CreateTopics(ctxFor(t, refusedWithin), "ok.existing"); err != nil {
		t.Errorf("CreateTopics of an existing topic it may use: %v", err)
	}
	_, err = app.Subscribe(ctxFor(t, refusedWithin), rpcbus.SubscribeOptions{Topics: []string{"ok.existing"}, Group: "nogroup"},
		func(d *rpcbus.Delivery) { d.Ack() })
	wantRefused(t, "Subscribe without Read on the group", err, rpcbus.ErrForbidden,
		"may not join consumer group \"nogroup\"", "--operation Read --group nogroup")
	_, err = app.Inbox(ctxFor(t, refusedWithin), "replies.cli", func(*rpcbus.Message) {})
	wantRefused(t, "Inbox without ACLs on its prefix", err, rpcbus.ErrForbidden,
		"--resource-pattern-type prefixed --topic replies.cli.")

	// With the ACLs the same user gets on.
	ib, err := app.Inbox(ctxFor(t, refusedWithin), "ok.cli", func(*rpcbus.Message) {})
	if err != nil {
		t.Fatalf("Inbox on a prefix it may use: %v", err)
	}
	_ = ib.Close()
}
