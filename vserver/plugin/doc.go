// Package plugin is the API of vRPC server plugins: the middleware that
// wraps every call a server (package vserver) forwards, after the request
// is read, deduplicated and its method resolved, and before the gRPC call
// to the target.
//
// A plugin package registers a Factory (Register) or a Builder
// (RegisterBuilder) under a name in its init function, as database/sql
// drivers and Caddy modules do, and the server configuration enables it
// by that name:
//
//	plugins:
//	  - name: logger
//	    settings: {level: info}
//
// The built-in plugins live in the packages below this one (logger,
// metrics, tracing, auth, ratelimit) and are written exactly as a third
// party writes one: they use only this package's API. Package vserver
// imports four of them, so every server has them; tracing is linked by
// importing its package (the vrpc command does); a server gets a plugin of
// another module by importing its package (example/plugin/stamp).
//
// Chain builds a plugins list around a Handler, and StartAll and StopAll
// run the plugins' Lifecycle hooks; a server does that for its list, and a
// plugin's tests may do it without a server.
//
// This package does not import vserver or the configuration package: a
// plugin depends on this API only.
package plugin
