package kafka

import (
	"errors"

	"github.com/nextpkg/vrpc/rpcbus"
)

// ErrUnacknowledged is returned by Subscription.Close when its context ended
// before every delivery was acknowledged. The acknowledged prefix was still
// committed; the rest is delivered again to another member of the group.
var ErrUnacknowledged = errors.New("kafka: deliveries left unacknowledged")

// ErrEmbeddedConflict is returned when an embedded broker is asked for at an
// address where one is already running with different options.
var ErrEmbeddedConflict = errors.New("kafka: embedded broker already running with other options")

// SettingError is the error of a bad rpc_bus.settings entry (or broker
// address); see rpcbus.SettingError.
type SettingError = rpcbus.SettingError

var badSetting = rpcbus.BadSetting
