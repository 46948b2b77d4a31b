// Package e2e holds the out-of-process end-to-end test: it builds the
// meshnode binary and runs a directory (a Genesis Seed), a replica following
// it, two mesh nodes and one node without the mesh as separate processes on
// loopback against an OpenAI-compatible test backend served by the test
// itself, then checks the whole path a user takes (up, call over the mesh
// and over HTTP with IICP-CX, status, peers, discover at seed and replica,
// node loss, directory restart, shutdown). It has no non-test code.
package e2e
