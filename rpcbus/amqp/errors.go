package amqp

import (
	"errors"
	"fmt"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/nextpkg/vrpc/rpcbus"
)

// ErrNotConnected is rpcbus.ErrUnavailable, which the errors of calls that
// could not reach the broker wrap.
//
// Deprecated: use rpcbus.ErrUnavailable.
var ErrNotConnected = rpcbus.ErrUnavailable

// ErrUnacknowledged is rpcbus.ErrUnacknowledged, which Subscription.Close's
// error wraps when deliveries were left unacknowledged.
//
// Deprecated: use rpcbus.ErrUnacknowledged.
var ErrUnacknowledged = rpcbus.ErrUnacknowledged

// ErrNacked is wrapped by Publish's error when the broker refused a message
// with basic.nack (an internal error of the queue, or a queue length limit
// with overflow reject-publish). The message was not taken; publishing it
// again may succeed.
var ErrNacked = errors.New("amqp: the broker refused the message (basic.nack)")

// SettingError is the error of a bad rpc_bus.settings entry (or broker
// address); see rpcbus.SettingError.
type SettingError = rpcbus.SettingError

var badSetting = rpcbus.BadSetting

// refusal returns err as an error wrapping rpcbus.ErrRefused, naming the
// fix, when the broker refused the bus's credentials or access to the
// virtual host or a resource (AMQP 403 ACCESS_REFUSED, 530 NOT_ALLOWED), and
// nil otherwise: retrying will not change those.
func refusal(err error, o *options) error {
	var ae *amqp.Error
	if !errors.As(err, &ae) {
		return nil
	}
	switch {
	case ae.Code == amqp.AccessRefused && strings.Contains(ae.Reason, "username or password"):
		return fmt.Errorf("%w: the broker did not accept user %q: check rpc_bus.settings.username and password "+
			"(or add the user: rabbitmqctl add_user %s <password>): %w", rpcbus.ErrUnauthenticated, o.Username, o.Username, err)
	case ae.Code == amqp.AccessRefused && strings.Contains(ae.Reason, "vhost"),
		ae.Code == amqp.NotAllowed:
		return fmt.Errorf("%w: user %q may not use virtual host %q (rpc_bus.settings.vhost): grant it "+
			"(rabbitmqctl set_permissions -p %s %s \".*\" \".*\" \".*\"): %w", rpcbus.ErrForbidden, o.Username, o.Vhost, o.Vhost, o.Username, err)
	case ae.Code == amqp.AccessRefused:
		return fmt.Errorf("%w: user %q lacks a permission on virtual host %q: grant configure, write and read on vRPC's "+
			"exchanges and queues (rabbitmqctl set_permissions -p %s %s <configure> <write> <read>): %w",
			rpcbus.ErrForbidden, o.Username, o.Vhost, o.Vhost, o.Username, err)
	}
	return nil
}
