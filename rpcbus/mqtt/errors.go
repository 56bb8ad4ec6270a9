package mqtt

import (
	"errors"

	"github.com/nextpkg/vrpc/rpcbus"
)

// ErrDisconnected is wrapped by the errors of calls that needed the broker
// while the bus could not reach it: Publish, Subscribe and Inbox wait for a
// connection until their context ends, then fail with an error wrapping both
// ErrDisconnected and the context's error.
var ErrDisconnected = errors.New("mqtt: not connected to the broker")

// ErrUnacknowledged is returned by Subscription.Close when its context ended
// before every delivery was acknowledged. The subscription's session keeps
// them, and another member of the group receives them again.
var ErrUnacknowledged = errors.New("mqtt: deliveries left unacknowledged")

// SettingError is the error of a bad rpc_bus.settings entry (or broker
// address); see rpcbus.SettingError.
type SettingError = rpcbus.SettingError

var badSetting = rpcbus.BadSetting
