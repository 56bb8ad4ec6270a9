package amqp

import (
	"errors"

	"github.com/nextpkg/vrpc/rpcbus"
)

// ErrNotConnected is wrapped by the errors of calls that could not reach
// the broker: the bus is reconnecting and the call's context ended first,
// or the connection was lost before the broker confirmed a publish (the
// message may or may not have been taken). The bus goes on reconnecting
// with backoff; the error also names the last connection failure.
var ErrNotConnected = errors.New("amqp: not connected to the broker")

// ErrUnacknowledged is returned by Subscription.Close when its context
// ended before every delivery was acknowledged. The broker gives the
// unacknowledged messages to another consumer of the group's queue.
var ErrUnacknowledged = errors.New("amqp: deliveries left unacknowledged")

// ErrNacked is wrapped by Publish's error when the broker refused a message
// with basic.nack (an internal error of the queue, or a queue length limit
// with overflow reject-publish). The message was not taken; publishing it
// again may succeed.
var ErrNacked = errors.New("amqp: the broker refused the message (basic.nack)")

// SettingError is the error of a bad rpc_bus.settings entry (or broker
// address); see rpcbus.SettingError.
type SettingError = rpcbus.SettingError

var badSetting = rpcbus.BadSetting
