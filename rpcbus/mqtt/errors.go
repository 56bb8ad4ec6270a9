package mqtt

import (
	"errors"
	"fmt"
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

// SettingError reports a bad rpc_bus.settings entry.
type SettingError struct {
	// Key is the entry's full path, such as "rpc_bus.settings.qos".
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
