// Package acmetest is an in-process ACME CA for tests (RFC 8555, enough of
// it for golang.org/x/crypto/acme/autocert): directory, nonces, accounts,
// orders, TLS-ALPN-01 validation against a dial address the test names,
// finalize with a CSR and certificate download, every request a verified
// ES256 JWS with a fresh nonce and the right url. Its CA certificate is in
// CAPEM for the client side to trust.
//
// acmetest imports only the standard library. Production code must not
// import it.
package acmetest
