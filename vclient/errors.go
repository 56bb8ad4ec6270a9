package vclient

import "errors"

// ErrClosed is returned by calls on a closed Client.
var ErrClosed = errors.New("vclient: client closed")
