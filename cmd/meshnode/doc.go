// Command meshnode runs an IICP node (`meshnode up`), a directory
// (`meshnode directory`: a Genesis Seed by default, a replica with --seed),
// and the short admin commands beside them (call, status, peers, token, id,
// paths, version, completion).
//
// This package is the CLI only: flags, their MESHNODE_* environment twins,
// config loading, signal handling and output. Everything it runs is composed
// in internal/app; the admin commands talk to a running node through
// internal/admin. Exit codes are documented in docs/cli.md.
//
// It may import internal/app, internal/admin, internal/buildinfo,
// internal/config, internal/identity, internal/logging, internal/paths,
// internal/sdnotify, dirbridge/client and wire (docs/architecture.md). It
// must not reach the engine, transports or directory packages directly: a
// new capability is composed in internal/app first. No other package may
// import it.
package main
