// Package httperrtest provides the misbehaving peer that tests of HTTP
// clients need to show that raw response bytes never reach an error's text
// (SEC-LOG-01): a TCP server that answers with fixed bytes instead of HTTP.
//
// It is imported by tests only (it takes a testing.TB) and imports only the
// standard library.
package httperrtest
