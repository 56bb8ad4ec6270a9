package rpcbus

import (
	"errors"
	"fmt"
)

var (
	// ErrClosed is returned by every method of a bus, subscription or inbox
	// after it has been closed.
	ErrClosed = errors.New("rpcbus: closed")

	// ErrUnknownTopic is returned by Publish when the topic does not exist
	// on the bus. For requests it means no vRPC server has ever declared
	// the target.
	ErrUnknownTopic = errors.New("rpcbus: unknown topic")

	// ErrMessageTooLarge is returned by Publish when the bus refuses a
	// message for its size.
	ErrMessageTooLarge = errors.New("rpcbus: message too large")
)

// SettingError reports a bad rpc_bus entry: a settings key of a backend, or
// a broker address.
type SettingError struct {
	// Key is the entry's full path, such as "rpc_bus.settings.acks".
	Key string
	// Problem says what is wrong and what is accepted.
	Problem string
}

// Error implements error.
func (e *SettingError) Error() string { return e.Key + ": " + e.Problem }

// BadSetting returns a *SettingError for rpc_bus.settings.<key>, for
// backends to report a setting they cannot take.
func BadSetting(key, format string, args ...any) error {
	return &SettingError{Key: "rpc_bus.settings." + key, Problem: fmt.Sprintf(format, args...)}
}
