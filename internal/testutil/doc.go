// Package testutil holds the two helpers most packages' tests need: a
// goroutine-safe buffer to capture logs that servers write from their own
// goroutines, and a bounded poll that waits for a condition instead of
// sleeping a fixed time (STYLE: never sleep-to-wait).
//
// It is imported by tests only (WaitFor takes a testing.TB) and imports only
// the standard library.
package testutil
