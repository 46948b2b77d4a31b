package wire

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"strings"
)

// NodeKeyBinding binds a (new) node key to an existing node_id: a meshnode
// extension of REGISTER (`node_key_binding`, iicp-extensions.md: additive)
// for node-key rotation and for recovery after the loss of a machine
// (docs/spec-decisions.md "node key rotation and recovery"). Signer says
// whose key signed it:
//
//   - "node": the node key the directory has on record for node_id
//     (rotation: the old key hands node_id over to the new one);
//   - "operator": the operator key the node_id is verifiably delegated to
//     (recovery: the old key is lost, the operator re-delegates node_id to
//     a new key).
//
// The signed bytes are a domain tag line followed by the canonical JSON of
// every field but sig (keys sorted, no whitespace, slashes unescaped), the
// layout of iicp-dir.md §3.16's operator self-service signatures. IssuedAt
// orders bindings: a directory accepts only one newer than the last it
// recorded for node_id, so a captured binding cannot be replayed.
type NodeKeyBinding struct {
	NodeID    string `json:"node_id"`
	NodePub   string `json:"node_pub"`
	Signer    string `json:"signer"`
	SignerPub string `json:"signer_pub"`
	IssuedAt  int64  `json:"issued_at"`
	NotAfter  int64  `json:"not_after"`
	Sig       string `json:"sig"`
}

// Binding signers.
const (
	BindingSignerNode     = "node"
	BindingSignerOperator = "operator"
)

// nodeKeyBindingTag is the domain-separation line of the signed bytes: a
// binding signature can never be mistaken for a delegation or a rename.
const nodeKeyBindingTag = "iicp:meshnode:node-key-binding:v1\n"

// Binding verification failures. The directory answers them with
// IICP-E050 (ownership of node_id not proven).
var (
	ErrBindingMalformed = errors.New("node_key_binding is malformed")
	ErrBindingExpired   = errors.New("node_key_binding has expired (not_after is past)")
	ErrBindingSignature = errors.New("node_key_binding signature does not verify")
)

// NodeKeyBindingBytes are the bytes a binding's signer signs.
func NodeKeyBindingBytes(b *NodeKeyBinding) []byte {
	return append([]byte(nodeKeyBindingTag), canonicalJSON(struct {
		IssuedAt  int64  `json:"issued_at"`
		NodeID    string `json:"node_id"`
		NodePub   string `json:"node_pub"`
		NotAfter  int64  `json:"not_after"`
		Signer    string `json:"signer"`
		SignerPub string `json:"signer_pub"`
	}{b.IssuedAt, b.NodeID, b.NodePub, b.NotAfter, b.Signer, b.SignerPub})...)
}

// SignNodeKeyBinding binds nodeID to newPub, signed by signer's key priv,
// issued at issuedAt and valid until notAfter (unix seconds).
func SignNodeKeyBinding(priv ed25519.PrivateKey, signer, nodeID string, newPub ed25519.PublicKey, issuedAt, notAfter int64) NodeKeyBinding {
	b := NodeKeyBinding{
		NodeID: strings.ToLower(nodeID), NodePub: base64.StdEncoding.EncodeToString(newPub), Signer: signer,
		SignerPub: base64.StdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey)), IssuedAt: issuedAt, NotAfter: notAfter,
	}
	b.Sig = base64.StdEncoding.EncodeToString(ed25519.Sign(priv, NodeKeyBindingBytes(&b)))
	return b
}

// VerifyNodeKeyBinding checks b's shape, lifetime at unix time now and
// signature, and returns the bound node key and the signer's key. Whether
// the signer may speak for node_id (the node key or operator on record) is
// the caller's judgement.
func VerifyNodeKeyBinding(b *NodeKeyBinding, now int64) (nodePub, signerPub ed25519.PublicKey, err error) {
	if b == nil || len(b.NodePub) > MaxDelegationField || len(b.SignerPub) > MaxDelegationField ||
		len(b.Sig) > MaxDelegationField || !ValidUUIDv4(b.NodeID) ||
		(b.Signer != BindingSignerNode && b.Signer != BindingSignerOperator) || b.IssuedAt <= 0 || b.NotAfter <= b.IssuedAt {
		return nil, nil, ErrBindingMalformed
	}
	np, err1 := decodeB64(b.NodePub)
	sp, err2 := decodeB64(b.SignerPub)
	sig, err3 := decodeB64(b.Sig)
	if errors.Join(err1, err2, err3) != nil || len(np) != ed25519.PublicKeySize || len(sp) != ed25519.PublicKeySize ||
		len(sig) != ed25519.SignatureSize {
		return nil, nil, ErrBindingMalformed
	}
	if now >= b.NotAfter {
		return nil, nil, ErrBindingExpired
	}
	if !ed25519.Verify(ed25519.PublicKey(sp), NodeKeyBindingBytes(b), sig) {
		return nil, nil, ErrBindingSignature
	}
	return ed25519.PublicKey(np), ed25519.PublicKey(sp), nil
}
