// Package version holds the vRPC release, for the packages that report it
// (the server's /debug/vrpc and metrics, the CLI) without importing the
// root package, which would link the client into the server.
package version

// Release is the vRPC release; the root package exports it as vrpc.Version.
const Release = "0.1.0"
