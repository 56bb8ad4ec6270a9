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
// them. Their API is package vserver/plugin, and the built-in plugins
// (logger, metrics, tracing, auth, ratelimit) are its subpackages. This
// package imports all but tracing, so that every server has them; tracing
// (the OpenTelemetry SDK and OTLP exporter) is linked by importing
// vserver/plugin/tracing, and dedup.store redis by importing
// vserver/redisdedup, so that a server that uses neither stays small. A plugin of another
// module registers the same way and is linked in by importing its package
// (example/plugin/stamp). The plugin API's old names here (Call, Handler,
// Middleware, RegisterPlugin, PluginEnv ...) are aliases and keep working.
//
// The admin endpoint on host:port serves /healthz, /readyz, /metrics
// (Registry) and /debug/vrpc (Debug).
package vserver
