// Package token is the one format of the Ed25519-signed bearer tokens an
// IICP directory issues and others verify offline: consumer tokens
// (iicp-dir.md §3.12, iicp-core.md §3.1 errata v1.5.2) and dispatch route
// tickets (iicp-dir.md §3.4, fixtures/profiles/dispatch-route-ticket-v1.json),
// and meshnode's mesh membership credentials (a node's standing as a
// registered member, bound to its libp2p peer ID; docs/spec-decisions.md).
//
//	token  = b64url(JSON claims) "." hex(Ed25519 signature)
//	signed = domain || b64url(JSON claims)   (the ASCII text as sent)
//
// Each kind has its own versioned domain string ending in "\n", so a
// signature of one kind never verifies as another. One validity rule
// (valid from iat−grace until exp+grace, exclusive) serves both kinds;
// consumer tokens additionally may live at most MaxConsumerLifetime, are
// bound to their audience (the target node_id) and, where the verifier
// authenticated the caller, to their subject, and a token carrying a jti
// (our directory adds one on request) is accepted once (Replay).
//
// The directory mints (Sign), nodes verify (VerifyConsumer) and the
// directory's dispatch endpoint checks tickets (VerifyRouteTicket).
//
// The package is pure: stdlib and crypto only, no clock (callers pass now),
// no network, no logging. Tokens are bearer material: never log one, nor
// put one in an error; the errors here carry none of it.
package token
