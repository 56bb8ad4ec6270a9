package redis

import (
	"context"
	"errors"
	"fmt"

	goredis "github.com/redis/go-redis/v9"

	"github.com/nextpkg/vrpc/rpcbus"
)

var (
	// ErrUnavailable is wrapped by errors of calls that could not reach the
	// Redis server (refused or broken connection, timeout, server loading or
	// failing over). The bus reconnects by itself; the call may be retried.
	ErrUnavailable = errors.New("redis: server unavailable")

	// ErrUnacknowledged is returned by Subscription.Close when its context
	// ended before every delivery was acknowledged. The rest were handed
	// back to the group for another member to claim.
	ErrUnacknowledged = errors.New("redis: deliveries left unacknowledged")
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
// marks connectivity failures with ErrUnavailable.
func wrap(err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	if transient(err) {
		return fmt.Errorf("redis: %s: %w: %w", what, ErrUnavailable, err)
	}
	return fmt.Errorf("redis: %s: %w", what, err)
}
