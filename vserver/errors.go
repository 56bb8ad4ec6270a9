package vserver

import "errors"

var (
	// ErrStopped is returned by Start when the server was stopped before
	// it started.
	ErrStopped = errors.New("vserver: server stopped")
	// ErrStarted is returned by a second call to Start.
	ErrStarted = errors.New("vserver: server already started")
)
