package amqp

import (
	"errors"

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
