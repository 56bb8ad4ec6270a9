package nats

import (
	"errors"
	"fmt"

	natsgo "github.com/nats-io/nats.go"

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

// refusal returns err as an error wrapping rpcbus.ErrRefused, naming the
// fix, when the server refused the bus's credentials, and nil otherwise.
func refusal(err error, o options) error {
	if !errors.Is(err, natsgo.ErrAuthorization) && !errors.Is(err, natsgo.ErrAuthExpired) {
		return nil
	}
	return fmt.Errorf("%w: the NATS server refused %s: check rpc_bus.settings user and password, token or creds_file "+
		"(or the user:password@ of the server address) against the server's authorization block: %w", rpcbus.ErrUnauthenticated, o.who(), err)
}

// who names the client the server knows, by its credentials.
func (o options) who() string {
	switch {
	case o.CredsFile != "":
		return fmt.Sprintf("the credentials of rpc_bus.settings.creds_file %s", o.CredsFile)
	case o.Token != "":
		return "rpc_bus.settings.token"
	case o.User != "":
		return fmt.Sprintf("user %q", o.User)
	}
	return "a client without credentials"
}
