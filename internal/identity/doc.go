// Package identity owns the node's long-term Ed25519 key: created on first
// run (mode 0600), loaded on every later run, and the single source of both
// names the node goes by — its IICP node_id (a UUID derived from the public
// key, so it survives restarts and re-registrations) and its libp2p peer ID
// (the same key identifies the node on the mesh).
//
// The key file is PEM-encoded PKCS#8 ("PRIVATE KEY"), readable by openssl
// and by crypto/x509. Private returns the 64-byte stdlib ed25519.PrivateKey,
// which is exactly the encoding libp2p's crypto.UnmarshalEd25519PrivateKey
// takes, so the mesh uses the same bytes without conversion.
//
// identity may import the standard library, libp2p's core crypto and peer
// packages (for the peer ID) and internal/paths (where the key lives);
// nothing else, in particular not mesh: it names the node, it does not run
// it.
package identity
