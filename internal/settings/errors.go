package settings

// KeyError is an error in one settings key: unknown, or a value that is of
// the wrong type or unusable. Backends report it in their own error type,
// under their own prefix.
type KeyError struct {
	Key string // such as "tls_ca_file"
	Err error  // what is wrong and what to do, without the key
}

// Error names the key, then says what is wrong with it.
func (e *KeyError) Error() string { return e.Key + ": " + e.Err.Error() }

// Unwrap returns Err.
func (e *KeyError) Unwrap() error { return e.Err }
