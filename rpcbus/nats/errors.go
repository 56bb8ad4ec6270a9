package nats

import (
	"errors"

	"github.com/nextpkg/vrpc/rpcbus"
)

// ErrUnacknowledged is returned by Subscription.Close when its context
// ended before every delivery was acknowledged. Those deliveries were
// given back to the group (negatively acknowledged), so another member
// receives them at once.
var ErrUnacknowledged = errors.New("nats: deliveries left unacknowledged")

// SettingError is the error of a bad rpc_bus.settings entry (or broker
// address); see rpcbus.SettingError.
type SettingError = rpcbus.SettingError

var badSetting = rpcbus.BadSetting
