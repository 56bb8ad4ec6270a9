package embedded

import "errors"

// ErrConflict is returned when a broker is asked for at an address where
// this process already runs one with other options (data_dir, SASL user or
// kfake options).
var ErrConflict = errors.New("embedded: broker already running with other options")
