package codec

import (
	"errors"
	"fmt"
)

// ErrUnsupportedVersion is returned when an envelope's version is newer
// than this build understands.
var ErrUnsupportedVersion = errors.New("codec: unsupported envelope version")

// ErrMalformed is returned when bytes do not decode as an envelope or the
// envelope lacks a required field.
var ErrMalformed = errors.New("codec: malformed envelope")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}
