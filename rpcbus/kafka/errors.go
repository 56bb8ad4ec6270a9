package kafka

import (
	"github.com/nextpkg/vrpc/rpcbus"
)

// ErrUnacknowledged is rpcbus.ErrUnacknowledged, which Subscription.Close's
// error wraps when deliveries were left unacknowledged.
//
// Deprecated: use rpcbus.ErrUnacknowledged.
var ErrUnacknowledged = rpcbus.ErrUnacknowledged

// SettingError is the error of a bad rpc_bus.settings entry (or broker
// address); see rpcbus.SettingError.
type SettingError = rpcbus.SettingError

var badSetting = rpcbus.BadSetting
