package redis

import (
	"context"
	"errors"
	"fmt"

	goredis "github.com/redis/go-redis/v9"
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

// SettingError reports a bad rpc_bus.settings entry.
type SettingError struct {
	// Key is the entry's full path, such as "rpc_bus.settings.max_len".
	Key string
	// Problem says what is wrong and what is accepted.
	Problem string
	// Err is the decoding error, if the value did not even have the right
	// type; its message already names Key.
	Err error
}

// Error implements error.
func (e *SettingError) Error() string {
	if e.Problem == "" && e.Err != nil {
		return e.Err.Error()
	}
	return e.Key + ": " + e.Problem
}

// Unwrap returns the decoding error, if any.
func (e *SettingError) Unwrap() error { return e.Err }

func badSetting(key, format string, args ...any) error {
	return &SettingError{Key: settingsPrefix + "." + key, Problem: fmt.Sprintf(format, args...)}
}

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
