package redis

import (
	"context"
	"errors"
	"fmt"

	goredis "github.com/redis/go-redis/v9"

	"github.com/nextpkg/vrpc/rpcbus"
)

var (
	// ErrUnavailable is rpcbus.ErrUnavailable, which the errors of calls
	// that could not reach the Redis server wrap.
	//
	// Deprecated: use rpcbus.ErrUnavailable.
	ErrUnavailable = rpcbus.ErrUnavailable

	// ErrUnacknowledged is rpcbus.ErrUnacknowledged, which
	// Subscription.Close's error wraps when deliveries were left
	// unacknowledged.
	//
	// Deprecated: use rpcbus.ErrUnacknowledged.
	ErrUnacknowledged = rpcbus.ErrUnacknowledged
)

// SettingError is the error of a bad rpc_bus.settings entry (or broker
// address); see rpcbus.SettingError.
type SettingError = rpcbus.SettingError

var badSetting = rpcbus.BadSetting

// transient reports whether err means the server could not be reached or
// could not serve the command for now, rather than refused it.
func transient(err error) bool {
	if err == nil || errors.Is(err, goredis.Nil) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var rerr goredis.Error
	if errors.As(err, &rerr) {
		for _, p := range []string{"LOADING ", "MASTERDOWN ", "TRYAGAIN ", "BUSY ", "CLUSTERDOWN "} {
			if goredis.HasErrorPrefix(err, p) {
				return true
			}
		}
		return false
	}
	return true // network errors, pool timeouts, closed connections
}

// wrap annotates err, a failed command, with what was being done, and
// marks connectivity failures with rpcbus.ErrUnavailable.
func wrap(err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	if errors.Is(err, rpcbus.ErrRefused) {
		return fmt.Errorf("redis: %s: %w", what, err)
	}
	if transient(err) {
		return fmt.Errorf("redis: %s: %w: %w", what, rpcbus.ErrUnavailable, err)
	}
	return fmt.Errorf("redis: %s: %w", what, err)
}

// refusal returns err as an error wrapping rpcbus.ErrRefused, naming the
// fix, when the server refused the bus's credentials (WRONGPASS, NOAUTH) or
// an ACL forbids a command or key (NOPERM), and nil otherwise.
func (o *options) refusal(err error) error {
	user := o.Username
	if user == "" {
		user = "default"
	}
	switch {
	case err == nil:
		return nil
	case goredis.HasErrorPrefix(err, "WRONGPASS"), goredis.HasErrorPrefix(err, "ERR invalid password"),
		goredis.HasErrorPrefix(err, "ERR AUTH"):
		return fmt.Errorf("%w: the Redis server did not accept user %q and the password: check rpc_bus.settings.username "+
			"and password (or the user:password@ of the address) against the server's requirepass or ACL users: %w",
			rpcbus.ErrUnauthenticated, user, err)
	case goredis.HasErrorPrefix(err, "NOAUTH"):
		return fmt.Errorf("%w: the Redis server requires a password: set rpc_bus.settings.password (and username for an ACL user): %w",
			rpcbus.ErrUnauthenticated, err)
	case goredis.HasErrorPrefix(err, "NOPERM"):
		return fmt.Errorf("%w: the server's ACL does not let user %q run a command vRPC needs: grant it "+
			"(ACL SETUSER %s on ~%s* &* +@stream +@keyspace +@connection +@transaction +client|id +client|unblock): %w",
			rpcbus.ErrForbidden, user, user, o.KeyPrefix, err)
	}
	return nil
}
