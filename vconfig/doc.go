// Package vconfig holds vRPC's configuration types: the server's
// (server.yaml: Config, Target, TargetSettings, PluginConf, DedupConf) and
// the client's (client.yaml: ClientConfig), with their defaults, their
// checks (Validate names the YAML key of every bad value and how to fix
// it) and their loaders.
//
// It is a leaf: it imports no client, server or bus backend, so a program
// that only calls links none of the server's code, and the server none of
// the client's. The root package re-exports every name here as an alias
// (vrpc.Config is vconfig.Config), and so does package vclient for the
// client's (vclient.Config is vconfig.ClientConfig).
package vconfig
