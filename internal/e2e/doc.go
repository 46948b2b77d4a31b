// Package e2e holds the out-of-process end-to-end test: it builds the
// meshnode binary and runs a directory and two nodes as separate processes
// on loopback against an OpenAI-compatible test backend served by the test
// itself, then checks the whole path a user takes (up, call, status,
// discover, node loss, directory restart, shutdown). It has no non-test code.
package e2e
