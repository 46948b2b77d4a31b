// Package breaker is the per-target circuit breaker of iicp-semantics.md
// §7.1 (5 consecutive failures open a circuit for 30 s, then one half-open
// probe), keyed by whatever names a target: a libp2p peer ID in mesh, a
// path and node in route.
//
// breaker imports only the standard library.
package breaker
