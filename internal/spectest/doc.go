// Package spectest locates the IICP specification's machine-readable files
// (fixtures, JSON Schemas, the intent registry) for tests. Tests read the
// spec's own vectors at test time and fail when one is missing, so a vector
// can never be skipped silently.
//
// The files are vendored under internal/spectest/iicp-spec so a clean clone
// tests without anything beside it; IICP_SPEC_DIR points tests at another
// copy (for example a newer spec checkout). guard_test.go fails when any
// test reads the spec from outside the repository.
//
// spectest is imported by tests only (it takes a testing.TB) and imports
// only the standard library: no module package, so every package's tests
// can use it.
package spectest
