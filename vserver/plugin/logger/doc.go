// Package logger is the vRPC server plugin "logger": one log line per
// call, through the server's *slog.Logger (vserver.WithLogger), with the
// request id, client id, target, method, status code, time in the queue
// and time at the target, and the trace id when the tracing plugin runs
// before it.
//
//	plugins:
//	  - name: logger
//	    settings: {level: info, sample: 0.1}
//
// level debug or info logs every call, error only failed ones; sample logs
// that share of successful calls (failed ones always). The package
// registers the plugin in its init; package vserver imports it, so every
// server has it.
package logger
