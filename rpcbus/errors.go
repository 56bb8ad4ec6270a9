package rpcbus

import "errors"

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
