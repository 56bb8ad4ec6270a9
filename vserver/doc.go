// Package vserver is the serving side of vRPC: it consumes the request
// topics of its targets from the bus, forwards each request's raw bytes to
// the target over gRPC, and publishes the reply to the address the request
// carries.
//
// Servers with the same name share the requests of a target through a
// consumer group. A request is acknowledged on the bus only after its reply
// has been published, so a server that dies mid-call leaves the request to
// another member of the group.
//
// Plugins wrap every forwarded call in the order the configuration lists
// them. A plugin is a Middleware (RegisterPlugin) or, when it needs the
// server's metrics registry or tracer provider or has start and stop hooks
// (Lifecycle), a Plugin built by a PluginBuilder (RegisterPluginBuilder).
// The built-in plugins are logger, metrics, tracing, auth and ratelimit;
// plugins of other modules register the same way (example/plugin/stamp).
//
// The admin endpoint on host:port serves /healthz, /readyz, /metrics
// (Registry) and /debug/vrpc (Debug).
package vserver
