package nats

import (
	"errors"
	"fmt"
)

// ErrUnacknowledged is returned by Subscription.Close when its context
// ended before every delivery was acknowledged. Those deliveries were
// given back to the group (negatively acknowledged), so another member
// receives them at once.
var ErrUnacknowledged = errors.New("nats: deliveries left unacknowledged")

// SettingError reports a bad rpc_bus.settings entry.
type SettingError struct {
	// Key is the entry's full path, such as "rpc_bus.settings.ack_wait".
	// It is empty when Err already names it.
	Key string
	// Problem says what is wrong and what is accepted.
	Problem string
	// Err is the decoding error when the key is unknown or its value has
	// the wrong type; its message names the key.
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
