package wire

import (
	"crypto/ed25519"
	"crypto/sha256"
)

// nodeIDDomain separates the node_id derivation from any other hash of the
// public key, so the UUID cannot be confused with another digest.
const nodeIDDomain = "meshnode/node-id/v1\x00"

// NodeIDFromKey is the node_id of an Ed25519 public key: a UUID (version 4
// layout, as directories validate node_id as UUID-v4, iicp-core.md §2.1)
// whose 122 free bits are the first bits of SHA-256 over the domain string
// and the key. A node's libp2p peer ID is the same key, so anyone who has
// authenticated a peer can recompute its node_id: a node_id a peer merely
// claims is believed only when it equals this value. It returns "" for a
// key of the wrong size.
func NodeIDFromKey(pub ed25519.PublicKey) string {
	if len(pub) != ed25519.PublicKeySize {
		return ""
	}
	b := make([]byte, 0, len(nodeIDDomain)+len(pub))
	h := sha256.Sum256(append(append(b, nodeIDDomain...), pub...))
	return UUIDv4([16]byte(h[:16]))
}
