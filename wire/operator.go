package wire

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
)

// OperatorDelegation is REGISTER's operator_delegation (iicp-dir.md §3.1,
// ADR-045 Phase A): the operator's Ed25519 signature binding NodeID to
// OperatorPub until NotAfter (unix seconds). It is the one format of
// operator identity in meshnode: the directory verifies it at REGISTER,
// and the same value can prove to a peer on the mesh or LAN that a node
// belongs to an operator. Verification is offline and pure.
type OperatorDelegation struct {
	NodeID      string `json:"node_id"`
	OperatorPub string `json:"operator_pub"`
	NotAfter    int64  `json:"not_after"`
	Sig         string `json:"sig"`
}

// MaxDelegationField bounds each delegation string (a base64 key is 44
// characters, a signature 88); longer values are refused before decoding.
const MaxDelegationField = 256

// Delegation verification failures. An invalid delegation leaves a node
// operator-unverified; per §3.1 it does not by itself reject a REGISTER.
var (
	ErrDelegationMalformed = errors.New("operator_delegation is malformed (base64 Ed25519 key and signature expected)")
	ErrDelegationNode      = errors.New("operator_delegation names another node_id")
	ErrDelegationExpired   = errors.New("operator_delegation has expired (not_after is past)")
	ErrDelegationSignature = errors.New("operator_delegation signature does not verify")
)

// DelegationBytes are the signed bytes: {"node_id":…,"not_after":…,
// "operator_pub":…}, keys sorted, no whitespace, slashes and non-ASCII
// unescaped (§3.1). operator_pub is signed as written.
func DelegationBytes(d *OperatorDelegation) []byte {
	return canonicalJSON(struct {
		NodeID      string `json:"node_id"`
		NotAfter    int64  `json:"not_after"`
		OperatorPub string `json:"operator_pub"`
	}{d.NodeID, d.NotAfter, d.OperatorPub})
}

// SignDelegation delegates nodeID to the operator key priv until notAfter
// (unix seconds). operator_pub and sig are standard padded base64.
func SignDelegation(priv ed25519.PrivateKey, nodeID string, notAfter int64) OperatorDelegation {
	d := OperatorDelegation{
		NodeID:      strings.ToLower(nodeID),
		OperatorPub: base64.StdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey)),
		NotAfter:    notAfter,
	}
	d.Sig = base64.StdEncoding.EncodeToString(ed25519.Sign(priv, DelegationBytes(&d)))
	return d
}

// VerifyDelegation checks d for nodeID at unix time now (the caller's
// clock: wire reads none) and returns the operator key it proves. node_id
// compares case-insensitively (UUID text); the key and signature may be
// standard or URL-safe base64, padded or not.
func VerifyDelegation(d *OperatorDelegation, nodeID string, now int64) (ed25519.PublicKey, error) {
	if d == nil || len(d.OperatorPub) > MaxDelegationField || len(d.Sig) > MaxDelegationField || len(d.NodeID) > MaxDelegationField {
		return nil, ErrDelegationMalformed
	}
	pub, err := decodeB64(d.OperatorPub)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return nil, ErrDelegationMalformed
	}
	sig, err := decodeB64(d.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, ErrDelegationMalformed
	}
	if !strings.EqualFold(d.NodeID, nodeID) {
		return nil, ErrDelegationNode
	}
	if now >= d.NotAfter {
		return nil, ErrDelegationExpired
	}
	if !ed25519.Verify(ed25519.PublicKey(pub), DelegationBytes(d), sig) {
		return nil, ErrDelegationSignature
	}
	return ed25519.PublicKey(pub), nil
}

// OperatorFingerprint is the short public fingerprint of an operator key
// (iicp-dir.md §3.4 operator_fingerprint): the first 16 hex digits of
// SHA-256 over the raw 32-byte key. It names the key without exposing it.
func OperatorFingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// OperatorRename is POST /v1/operator/rename (iicp-recognition.md §7):
// the operator sets its public display_name, signed over
// {"display_name":…,"operator_pub":…,"ts":…}; ts is unix seconds.
type OperatorRename struct {
	OperatorPub string `json:"operator_pub"`
	DisplayName string `json:"display_name"`
	TS          int64  `json:"ts"`
	Sig         string `json:"sig"`
}

// MaxDisplayName bounds an operator display_name (characters).
const MaxDisplayName = 64

// RenameBytes are the signed bytes of a rename.
func RenameBytes(r *OperatorRename) []byte {
	return canonicalJSON(struct {
		DisplayName string `json:"display_name"`
		OperatorPub string `json:"operator_pub"`
		TS          int64  `json:"ts"`
	}{r.DisplayName, r.OperatorPub, r.TS})
}

// SignRename signs a rename of the operator key priv to name at ts.
func SignRename(priv ed25519.PrivateKey, name string, ts int64) OperatorRename {
	r := OperatorRename{OperatorPub: base64.StdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey)), DisplayName: name, TS: ts}
	r.Sig = base64.StdEncoding.EncodeToString(ed25519.Sign(priv, RenameBytes(&r)))
	return r
}

// VerifyRename checks the rename's display_name and signature and returns
// the operator key; the caller judges ts against its clock.
func VerifyRename(r *OperatorRename) (ed25519.PublicKey, *Error) {
	if e := ValidateDisplayName(r.DisplayName); e != nil {
		return nil, e
	}
	if len(r.OperatorPub) > MaxDelegationField || len(r.Sig) > MaxDelegationField {
		return nil, invalid("operator_pub", "is too long")
	}
	pub, err := decodeB64(r.OperatorPub)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return nil, invalid("operator_pub", "must be a base64 Ed25519 public key")
	}
	sig, err := decodeB64(r.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize || !ed25519.Verify(ed25519.PublicKey(pub), RenameBytes(r), sig) {
		return nil, NewError(CodeUnauthorized, "operator signature does not verify")
	}
	return ed25519.PublicKey(pub), nil
}

// ValidateDisplayName: 1–64 characters of printable text, no control
// characters, not only spaces.
func ValidateDisplayName(name string) *Error {
	n := 0
	for _, r := range name {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x2028 || r == 0x2029 {
			return invalid("display_name", "must not contain control characters")
		}
		n++
	}
	if n == 0 || n > MaxDisplayName || strings.TrimSpace(name) == "" {
		return invalid("display_name", "must be 1-64 characters")
	}
	return nil
}

// canonicalJSON encodes v (a struct whose fields are declared in key
// order) with no whitespace and no HTML escaping. U+2028/U+2029 would be
// escaped by encoding/json; display names refuse them and the other
// signed fields are base64, UUIDs and integers.
func canonicalJSON(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // strings and integers only: cannot fail
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// decodeB64 accepts standard or URL-safe base64, padded or not.
func decodeB64(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if strings.ContainsAny(s, "-_") {
		return base64.RawURLEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}
