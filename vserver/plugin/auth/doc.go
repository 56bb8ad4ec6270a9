// Package auth is the vRPC server plugin "auth": every call must carry
// the token of the client id it claims, in a metadata header (compared in
// constant time, and removed before the call goes on, so targets never see
// tokens), else it is refused with UNAUTHENTICATED; and the client's
// allow-list must cover the target and method, else PERMISSION_DENIED.
// Refused calls never reach the next plugin or the target.
//
//	plugins:
//	  - name: auth
//	    settings:
//	      header: vrpc-token            # the token's metadata key (default)
//	      clients:                      # by client id
//	        billing: {token: ${BILLING_TOKEN}, allow: [demo/demo.Demo/Ping]}
//	        ops:     {token: ${OPS_TOKEN}, allow: [demo, "reports/reports.Reports/*"]}
//
// An allow entry is "*" (anything), "<target>" (any method of the
// target), "<target>/<pkg.Service>/*" (any method of a service) or
// "<target>/<pkg.Service>/<Method>". The package registers the plugin in
// its init; package vserver imports it, so every server has it.
package auth
