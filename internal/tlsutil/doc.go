// Package tlsutil holds the server certificates meshnode's two HTTPS
// servers share, the node's HTTP bridge (dirbridge/httpapi) and the
// directory (dirbridge/directory):
//
//   - self-signed certificates, generated when an operator gives none, kept
//     in the state directory and reused across restarts so clients can pin
//     them, regenerated when missing, unloadable or near expiry;
//   - ACME certificates (RFC 8555 through golang.org/x/crypto/acme/autocert,
//     TLS-ALPN-01 on the server's own listener, cached in <state>/acme).
//
// tlsutil imports the standard library, x/crypto and internal/paths (atomic
// 0600 writes) only; it knows nothing of the servers that use it.
package tlsutil
