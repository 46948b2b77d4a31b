package directory

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"
)

// operatorDelegation is REGISTER's operator_delegation (iicp-dir.md §3.1,
// ADR-045 Phase A): an operator's Ed25519 signature binding node_id to
// operator_pub until not_after.
type operatorDelegation struct {
	NodeID      string `json:"node_id"`
	OperatorPub string `json:"operator_pub"`
	NotAfter    int64  `json:"not_after"`
	Sig         string `json:"sig"`
}

// maxDelegationField bounds each delegation string (a base64 key is 44
// characters, a signature 88).
const maxDelegationField = 256

// verifiedOperator returns the operator public key (standard base64, as
// sent) a delegation proves for nodeID at now, or "" when it proves
// nothing. Per §3.1 an invalid delegation leaves the node
// operator-unverified; it does not reject the registration.
func verifiedOperator(d *operatorDelegation, nodeID string, now time.Time) string {
	if d == nil || len(d.OperatorPub) > maxDelegationField || len(d.Sig) > maxDelegationField ||
		len(d.NodeID) > maxDelegationField || !strings.EqualFold(d.NodeID, nodeID) || now.Unix() >= d.NotAfter {
		return ""
	}
	pub, err := decodeB64(d.OperatorPub)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return ""
	}
	sig, err := decodeB64(d.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return ""
	}
	msg, err := delegationBytes(d)
	if err != nil || !ed25519.Verify(ed25519.PublicKey(pub), msg, sig) {
		return ""
	}
	return base64.StdEncoding.EncodeToString(pub)
}

// delegationBytes are the signed bytes: {"node_id":…,"not_after":…,
// "operator_pub":…}, keys sorted, no whitespace, slashes unescaped.
func delegationBytes(d *operatorDelegation) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(struct {
		NodeID      string `json:"node_id"`
		NotAfter    int64  `json:"not_after"`
		OperatorPub string `json:"operator_pub"`
	}{d.NodeID, d.NotAfter, d.OperatorPub})
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), err
}

// decodeB64 accepts standard or URL-safe base64, padded or not.
func decodeB64(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if strings.ContainsAny(s, "-_") {
		return base64.RawURLEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}
