package kafka

import (
	"errors"
	"fmt"
)

// ErrUnacknowledged is returned by Subscription.Close when its context ended
// before every delivery was acknowledged. The acknowledged prefix was still
// committed; the rest is delivered again to another member of the group.
var ErrUnacknowledged = errors.New("kafka: deliveries left unacknowledged")

// ErrEmbeddedConflict is returned when an embedded broker is asked for at an
// address where one is already running with different options.
var ErrEmbeddedConflict = errors.New("kafka: embedded broker already running with other options")

// SettingError reports a bad rpc_bus.settings entry.
type SettingError struct {
	// Key is the entry's full path, such as "rpc_bus.settings.acks".
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
