package mqtt

import (
	"fmt"

	"github.com/nextpkg/vrpc/rpcbus"
)

// ErrDisconnected is rpcbus.ErrUnavailable, which the errors of calls that
// needed the broker while the bus could not reach it wrap.
//
// Deprecated: use rpcbus.ErrUnavailable.
var ErrDisconnected = rpcbus.ErrUnavailable

// ErrUnacknowledged is rpcbus.ErrUnacknowledged, which Subscription.Close's
// error wraps when deliveries were left unacknowledged.
//
// Deprecated: use rpcbus.ErrUnacknowledged.
var ErrUnacknowledged = rpcbus.ErrUnacknowledged

// SettingError is the error of a bad rpc_bus.settings entry (or broker
// address); see rpcbus.SettingError.
type SettingError = rpcbus.SettingError

var badSetting = rpcbus.BadSetting

// MQTT 5 reason codes that refuse the client rather than report a passing
// state.
const (
	reasonBadUserOrPassword = 0x86
	reasonNotAuthorized     = 0x87
	reasonBanned            = 0x8A
	reasonBadAuthMethod     = 0x8C
)

// connRefusal returns the error of a CONNACK with reason code rc as one
// wrapping rpcbus.ErrRefused, naming the fix, or nil when rc does not
// refuse the client for good. user is the user name the bus sent.
func connRefusal(rc byte, user string, err error) error {
	switch rc {
	case reasonBadUserOrPassword, reasonNotAuthorized, reasonBadAuthMethod:
		who := fmt.Sprintf("user %q", user)
		if user == "" {
			who = "a client without a user name (anonymous)"
		}
		return fmt.Errorf("%w: the broker refused %s (CONNACK reason code %#02x): check rpc_bus.settings.username and "+
			"password (or the user:password@ of the broker address), or add the user on the broker "+
			"(mosquitto: mosquitto_passwd -b <password_file> <user> <password>): %w", rpcbus.ErrUnauthenticated, who, rc, err)
	case reasonBanned:
		return fmt.Errorf("%w: the broker has banned this client (CONNACK reason code %#02x): %w", rpcbus.ErrForbidden, rc, err)
	}
	return nil
}

// aclRefusal is the error of a PUBLISH or SUBSCRIBE (what, on topic) the
// broker refused with reason code 0x87, not authorized: its ACL.
func aclRefusal(what, topic, user string, err error) error {
	return fmt.Errorf("%w: user %q may not %s %q (the broker's ACL, reason code 0x87): grant it "+
		"(mosquitto: a \"topic readwrite %s\" line for the user in the acl_file): %w", rpcbus.ErrForbidden, user, what, topic, topic, err)
}
