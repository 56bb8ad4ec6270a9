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

// clipID is an id as an error message shows it: at most 128 bytes of it,
// since it comes from a sender.
func clipID(id string) string {
	if len(id) <= 128 {
		return id
	}
	return fmt.Sprintf("%.128q…(%d bytes)", id, len(id))
}
