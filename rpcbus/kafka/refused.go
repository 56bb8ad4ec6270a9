package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/nextpkg/vrpc/rpcbus"
)

// What the bus was doing when the brokers refused it: the ACL operation it
// needs.
const (
	opDescribe = "Describe" // look a topic up
	opWrite    = "Write"    // publish
	opRead     = "Read"     // consume, as a group member
	opCreate   = "Create"   // create a topic
)

// refusal returns err as an error wrapping rpcbus.ErrRefused, naming the
// refusal and its fix, when the brokers refused the bus for a reason that
// retrying will not change (credentials, ACLs, cluster settings), and nil
// otherwise. op is the ACL operation the bus needed on resource, a topic
// (or group, for op Read with group set).
func (b *Bus) refusal(err error, op, topic, group string) error {
	user := b.o.Username
	if user == "" {
		user = "ANONYMOUS" // Kafka's principal for a client without SASL
	}
	acl := func(operation, resource string) string {
		return fmt.Sprintf("kafka-acls.sh --bootstrap-server <broker> --add --allow-principal User:%s --operation %s %s", user, operation, resource)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, rpcbus.ErrRefused):
		return err
	case errors.Is(err, kerr.SaslAuthenticationFailed), errors.Is(err, kerr.IllegalSaslState), errors.Is(err, errAuthClosed):
		return fmt.Errorf("%w: the brokers did not accept SASL user %q (%s): check rpc_bus.settings.username and "+
			"password, or create the user on the brokers (%s): %w",
			rpcbus.ErrUnauthenticated, b.o.Username, b.o.SASLMechanism, addUser(b.o.SASLMechanism, b.o.Username), err)
	case errors.Is(err, kerr.UnsupportedSaslMechanism):
		return fmt.Errorf("%w: the brokers do not enable rpc_bus.settings.sasl_mechanism %s: set it to one of the "+
			"brokers' sasl.enabled.mechanisms: %w", rpcbus.ErrUnauthenticated, b.o.SASLMechanism, err)
	case errors.Is(err, kerr.TopicAuthorizationFailed):
		if op == opRead {
			op = opDescribe // Read on the group is the other half
		}
		orElse := "or run with a user that has it"
		if op == opCreate {
			orElse = fmt.Sprintf("or create the topic beforehand (kafka-topics.sh --bootstrap-server <broker> --create --topic %s): "+
				"a topic that exists needs only Describe, Read and Write", topic)
		}
		return fmt.Errorf("%w: user %s may not %s topic %q (ACL): grant it on the brokers (%s), %s: %w",
			rpcbus.ErrForbidden, user, op, topic, acl(op, "--topic "+topic), orElse, err)
	case errors.Is(err, kerr.GroupAuthorizationFailed):
		return fmt.Errorf("%w: user %s may not join consumer group %q (ACL): grant it on the brokers (%s): %w",
			rpcbus.ErrForbidden, user, group, acl(opRead, "--group "+group), err)
	case errors.Is(err, kerr.ClusterAuthorizationFailed):
		return fmt.Errorf("%w: user %s may not %s on the cluster (ACL): grant it on the brokers (%s --cluster), "+
			"or create topic %q beforehand: %w", rpcbus.ErrForbidden, user, op, acl(op, "--cluster"), topic, err)
	case errors.Is(err, kerr.InvalidReplicationFactor) && b.o.ReplicationFactor == -1:
		return fmt.Errorf("%w: topic %q needs the brokers' default.replication.factor (rpc_bus.settings.replication_factor is -1), "+
			"more than the live brokers: start the missing brokers, or set replication_factor to what the live brokers can hold: %w",
			rpcbus.ErrRefused, topic, err)
	case errors.Is(err, kerr.InvalidReplicationFactor):
		return fmt.Errorf("%w: topic %q needs rpc_bus.settings.replication_factor %d, more than the live brokers: "+
			"start the missing brokers, or lower replication_factor (to -1 for the brokers' default.replication.factor): %w",
			rpcbus.ErrRefused, topic, b.o.ReplicationFactor, err)
	case errors.Is(err, kerr.PolicyViolation), errors.Is(err, kerr.InvalidConfig), errors.Is(err, kerr.InvalidPartitions):
		return fmt.Errorf("%w: the brokers refused topic %q as configured (rpc_bus.settings partitions %d, replication_factor %d, "+
			"max_message_bytes %d, reply_retention): change them to fit the brokers' policy, or create the topic beforehand: %w",
			rpcbus.ErrRefused, topic, b.o.Partitions, b.o.ReplicationFactor, b.o.MaxMessageBytes, err)
	}
	return nil
}

// addUser says how a broker gets a SASL user.
func addUser(mech, user string) string {
	if mech == "PLAIN" {
		return "PLAIN users are listed in the brokers' JAAS configuration, as user_" + user + "=\"<password>\""
	}
	return fmt.Sprintf("kafka-configs.sh --bootstrap-server <broker> --alter --entity-type users --entity-name %s --add-config '%s=[password=<password>]'", user, mech)
}

// errAuthClosed is what a broker closing the connection in answer to the
// bus's SASL credentials means, rather than answering
// SASL_AUTHENTICATION_FAILED as Kafka does: franz-go sees an EOF that it
// takes for a passing network fault and retries until the deadline.
var errAuthClosed = errors.New("the broker closed the connection in answer to the SASL credentials, twice in a row")

// authWatch is a franz-go hook on every client of a bus that notices
// brokers closing connections in answer to the bus's SASL credentials.
// Two such answers in a row, with no request answered in between, make the
// bus's waiting operations fail with errAuthClosed; a request answered
// after authentication clears it.
type authWatch struct {
	mu      sync.Mutex
	strikes int
	failed  atomic.Pointer[chan struct{}] // closed while the credentials are refused
}

var _ kgo.HookBrokerRead = (*authWatch)(nil)

func newAuthWatch() *authWatch {
	w := &authWatch{}
	ch := make(chan struct{})
	w.failed.Store(&ch)
	return w
}

// OnBrokerRead implements kgo.HookBrokerRead.
func (w *authWatch) OnBrokerRead(_ kgo.BrokerMetadata, key int16, bytesRead int, _, _ time.Duration, err error) {
	switch kmsg.Key(key) {
	case kmsg.SASLAuthenticate:
		if err == nil || bytesRead > 0 || errors.Is(err, kgo.ErrClientClosed) {
			return
		}
		w.mu.Lock()
		if w.strikes++; w.strikes == 2 {
			close(*w.failed.Load())
		}
		w.mu.Unlock()
	case kmsg.ApiVersions, kmsg.SASLHandshake:
	default:
		if err != nil {
			return
		}
		w.mu.Lock()
		if w.strikes >= 2 {
			ch := make(chan struct{})
			w.failed.Store(&ch)
		}
		w.strikes = 0
		w.mu.Unlock()
	}
}

// refused returns a channel closed while the brokers refuse the bus's
// credentials.
func (w *authWatch) refused() <-chan struct{} { return *w.failed.Load() }

// guard returns ctx, cancelled with errAuthClosed as its cause if the
// brokers refuse the bus's credentials meanwhile. Errors of requests made
// with it are to go through cause.
func (w *authWatch) guard(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	refused := w.refused()
	stop := make(chan struct{})
	go func() {
		select {
		case <-refused:
			cancel(errAuthClosed)
		case <-stop:
		case <-ctx.Done():
		}
	}()
	return ctx, func() {
		close(stop)
		cancel(context.Canceled)
	}
}

// cause returns errAuthClosed instead of err when ctx, made by guard, was
// cancelled for it.
func cause(ctx context.Context, err error) error {
	if err != nil && errors.Is(context.Cause(ctx), errAuthClosed) {
		return errAuthClosed
	}
	return err
}
