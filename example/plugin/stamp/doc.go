// Package stamp is a vRPC server plugin written as a third party writes
// one, and exactly as the built-in plugins (vserver/plugin/logger and its
// siblings) are: a package of its own that registers the plugin by name
// in its init, uses only the API of package vserver/plugin, and decodes
// its settings strictly. A server gets it by importing the package
// (example/plugin is such a server) and enables it by name:
//
//	plugins:
//	  - name: stamp
//	    settings:
//	      headers: {x-via: vrpc}       # set on every call to the target
//	      client_header: x-caller-id   # the caller's client id, for the target
//
// The target sees the headers and the caller's client id (overwriting
// whatever the caller sent under those keys, so a caller cannot pose as
// another); the caller gets an x-stamped-by trailer naming the server.
package stamp
