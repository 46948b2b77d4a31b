// Command meshnode runs an IICP node (`meshnode up`), a directory
// (`meshnode directory`: a Genesis Seed by default, a replica with --seed),
// and the short admin commands beside them (call, status, peers, token, id,
// paths, version, completion).
//
// This package is the CLI only: flags, their MESHNODE_* environment twins,
// config loading, signal handling and output. Everything it runs is composed
// in internal/daemon; the admin commands talk to a running node through
// internal/daemon/admin. Exit codes are documented in docs/cli.md.
//
// It may import internal/daemon, internal/daemon/admin, internal/buildinfo,
// internal/config, internal/identity, internal/logging, internal/paths,
// internal/sdnotify, dirbridge/dirclient and wire (docs/architecture.md). It
// must not reach the engine, transports or directory packages directly: a
// new capability is composed in internal/daemon first. No other package may
// import it.
package main
