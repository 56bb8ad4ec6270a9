package rpcbus

import (
	"errors"
	"fmt"
)

var (
	// ErrClosed is returned by every method of a bus, subscription or inbox
	// after it has been closed.
	ErrClosed = errors.New("rpcbus: closed")

	// ErrUnknownTopic is returned by Publish when the topic does not exist
	// on the bus. For requests it means no vRPC server has ever declared
	// the target.
	ErrUnknownTopic = errors.New("rpcbus: unknown topic")

	// ErrMessageTooLarge is returned by Publish when the bus refuses a
	// message for its size.
	ErrMessageTooLarge = errors.New("rpcbus: message too large")

	// ErrUnavailable is wrapped by the errors of calls that could not reach
	// the bus's servers: the connection is down (the bus goes on
	// reconnecting) and the call's context ended first, or the connection
	// was lost before the server confirmed a publish (the message may or
	// may not have been taken). The error also says what failed last. The
	// call may be tried again.
	//
	// It is also the mark of every error that means "not reachable yet":
	// a constructor, CreateTopics, Subscribe or Inbox that could not reach
	// any of the bus's servers (connection refused, dial or DNS failure, no
	// answer before ctx ended, a broker still starting) wraps it, and
	// nothing else does. Servers and clients that start before their bus
	// wait and try again on these errors (see Unreachable), and fail at
	// once on any other: bad configuration, refused credentials, missing
	// permissions.
	ErrUnavailable = errors.New("rpcbus: the bus's servers cannot be reached")

	// ErrRefused is wrapped by the errors of calls the bus's servers
	// refused for a reason that trying again will not change: the
	// credentials (the error wraps ErrUnauthenticated too), the
	// permissions, such as missing ACLs (ErrForbidden too), or a cluster
	// setting, such as a replication factor larger than the live brokers.
	// The error says which, and what to change. Unlike ErrUnavailable it
	// is not worth waiting out: fix the setting, the ACL or the broker.
	ErrRefused = errors.New("rpcbus: the bus refused the request")

	// ErrUnauthenticated wraps ErrRefused: the bus's servers did not
	// accept the credentials (user name and password, token).
	ErrUnauthenticated = fmt.Errorf("%w: credentials not accepted", ErrRefused)

	// ErrForbidden wraps ErrRefused: the credentials were accepted but do
	// not permit the operation (ACLs, permissions).
	ErrForbidden = fmt.Errorf("%w: not permitted", ErrRefused)

	// ErrUnacknowledged is wrapped by the error of Subscription.Close when
	// its context ended before every delivery handed out had been
	// acknowledged, together with the context's error. The bus gives those
	// messages back to the group: another member receives them (at once or
	// after the backend's redelivery timeout, see its documentation).
	ErrUnacknowledged = errors.New("rpcbus: deliveries left unacknowledged")
)

// Unreachable reports whether err means that the bus's servers could not
// be reached (it wraps ErrUnavailable): a transient failure, worth trying
// again once the bus is up. Any other error is permanent for a caller
// that is starting: trying again would fail the same way.
func Unreachable(err error) bool { return errors.Is(err, ErrUnavailable) }

// DefaultMaxInFlight is SubscribeOptions.MaxInFlight when zero: how many
// deliveries a subscription hands out before it waits for acknowledgements.
const DefaultMaxInFlight = 1024

// SettingError reports a bad rpc_bus entry: a settings key of a backend, or
// a broker address.
type SettingError struct {
	// Key is the entry's full path, such as "rpc_bus.settings.acks".
	Key string
	// Problem says what is wrong and what is accepted.
	Problem string
}

// Error implements error.
func (e *SettingError) Error() string { return e.Key + ": " + e.Problem }

// BadSetting returns a *SettingError for rpc_bus.settings.<key>, for
// backends to report a setting they cannot take.
func BadSetting(key, format string, args ...any) error {
	return &SettingError{Key: "rpc_bus.settings." + key, Problem: fmt.Sprintf(format, args...)}
}
