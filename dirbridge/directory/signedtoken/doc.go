// Package signedtoken implements the two Ed25519-signed bearer formats an
// IICP directory issues: consumer tokens (iicp-dir.md §3.12) and dispatch
// route tickets (iicp-dir.md §3.4, fixtures/profiles/dispatch-route-ticket-v1.json).
//
// Both share one shape: `<base64url(JSON claims)>.<hex(Ed25519 signature)>`,
// where the signature covers `domain || base64url_payload_bytes` and domain is
// a versioned string ending in "\n". The package is pure: no clock (callers
// pass now), no network, no logging. Tokens are bearer material and must
// never be logged; use Prefix for log-safe identifiers.
//
// It imports only the standard library and no module package, so that nodes
// and clients can verify tokens without pulling in the directory server.
package signedtoken
