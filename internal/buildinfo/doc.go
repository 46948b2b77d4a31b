// Package buildinfo carries the version stamped in at link time
// (`-ldflags "-X .../internal/buildinfo.Version=..."`, see the Makefile).
// cmd/meshnode reads it for `meshnode version` and the User-Agent, and
// passes it to internal/daemon, which reports it in the start-up log, the
// admin status, runtime.json and the User-Agent of directory requests.
//
// buildinfo imports nothing, so any package may depend on it without
// pulling in anything else.
package buildinfo
