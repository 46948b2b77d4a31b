// Package testutil holds the helpers many packages' tests need: a
// goroutine-safe buffer to capture logs that servers write from their own
// goroutines, a bounded poll that waits for a condition instead of
// sleeping a fixed time (STYLE: never sleep-to-wait), the check that an
// HTTP panic recoverer never logs or answers the panic value, and the
// process CPU time the benchmarks report per request.
//
// It is imported by tests only (WaitFor takes a testing.TB) and imports only
// the standard library.
package testutil
