// Package archtest holds the repository's architecture guardrails as tests.
// It has no non-test code. The tests parse every Go file of the module with
// go/parser (no network, no go list, well under a second) and check:
//
//   - the import layering of docs/architecture.md: which module packages each
//     package may import (layers_test.go), and the purity rules of the
//     low layers: wire imports only the standard library and fxamacker/cbor,
//     and none of net, net/http, log, os or time (wire must not read the
//     clock: a timestamp is an argument, never time.Now); node imports no
//     net/http, libp2p, dirbridge, mesh or cmd; node/backend uses net/http as
//     a client only; only cmd/meshnode imports internal/daemon;
//   - the house style that keeps code reviewable (style_test.go): a doc.go
//     with the package comment in every package, non-test files of at most
//     maxFileLines lines, functions of at most maxFuncLines lines, no panic in
//     library code outside init, must* helpers and re-panics of
//     http.ErrAbortHandler, no process-global HTTP server state, goleak in
//     every package whose code starts goroutines;
//   - the static half of SEC-LOG-01 (leaks_test.go): no log call passes an
//     attribute named, or a field called, payload/body/prompt/token/… .
//
// Known exceptions live in allowlist_test.go, each with a one-line reason.
// The tests also fail on a stale entry, so the lists only shrink.
//
// Every failure message names the file (and line) and says what to change.
// A new package must be added to the layer table in layers_test.go and to
// docs/architecture.md.
package archtest
