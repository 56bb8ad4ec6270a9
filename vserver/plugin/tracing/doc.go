// Package tracing is the vRPC server plugin "tracing": OpenTelemetry spans
// that continue the caller's trace. The client sends the W3C trace context
// of the caller's span in the request envelope; the plugin makes a
// "vrpc queue <target>" span for the time on the bus and a server span,
// named for the method, around the rest of the chain and the call to the
// target, and passes the server span's context to the target in the
// traceparent header.
//
//	plugins:
//	  - name: tracing                    # first: the others' log lines join the trace
//	    settings:
//	      endpoint: otel-collector:4317  # OTLP/gRPC; empty: spans made and passed on, not exported
//	      insecure: true                 # plaintext to the collector (default); false: TLS
//	      headers: {x-api-key: ${OTEL_KEY}}
//	      sample: 0.01                   # share of new traces sampled; a caller's decision is kept
//	      service_name: vrpc-edge        # default: the server's name
//
// A server given a tracer provider (vserver.WithTracerProvider, seen here
// as plugin.Env.TracerProvider) makes its spans with it instead, and
// endpoint and sample do not apply. The package registers the plugin in
// its init; package vserver imports it, so every server has it.
package tracing
