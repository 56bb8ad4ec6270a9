package vgateway

import "errors"

// ErrServing is returned by Serve when the gateway is already serving.
var ErrServing = errors.New("vgateway: already serving")

// ErrStopped is returned by Serve after Stop.
var ErrStopped = errors.New("vgateway: stopped")
