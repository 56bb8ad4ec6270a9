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
	if transient(err) {
		return fmt.Errorf("redis: %s: %w: %w", what, rpcbus.ErrUnavailable, err)
	}
	return fmt.Errorf("redis: %s: %w", what, err)
}
