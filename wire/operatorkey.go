package wire

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
)

// Operator-key self-service (iicp-dir.md §3.16): a directory issues a
// single-use challenge nonce to a known operator key, and the operator
// signs requests over the canonical bytes
//
//	iicp:operator:self-service:v1\n<compact JSON, top-level keys sorted>
//
// of an object holding action, operator_pub, nonce, ts and the action's
// own fields, never sig or new_key_sig. meshnode implements key rotation
// (POST /v1/operator/key/rotate): the current key signs action
// "key_rotate", the successor key signs the same object with action
// "key_rotate_successor" (new_key_sig), so both keys prove control.

// SelfServiceTag is the first line of every self-service signature.
const SelfServiceTag = "iicp:operator:self-service:v1\n"

// Self-service actions meshnode implements.
const (
	ActionKeyRotate          = "key_rotate"
	ActionKeyRotateSuccessor = "key_rotate_successor"
)

// OperatorChallenge is POST /v1/operator/challenge's answer.
type OperatorChallenge struct {
	Nonce               string `json:"nonce"`
	ExpiresAt           int64  `json:"expires_at"`
	OperatorFingerprint string `json:"operator_fingerprint"`
}

// OperatorKeyRotate is POST /v1/operator/key/rotate's body.
// NewOperatorPub is the successor key (the action-specific field; §3.16
// names the action but not the field).
type OperatorKeyRotate struct {
	Action         string `json:"action"`
	OperatorPub    string `json:"operator_pub"`
	NewOperatorPub string `json:"new_operator_pub"`
	Nonce          string `json:"nonce"`
	TS             int64  `json:"ts"`
	Sig            string `json:"sig"`
	NewKeySig      string `json:"new_key_sig"`
}

// Rotation verification failures.
var (
	ErrRotateMalformed = errors.New("key rotation request is malformed")
	ErrRotateSignature = errors.New("key rotation signature does not verify")
	ErrRotateSuccessor = errors.New("key rotation successor signature does not verify")
)

// OperatorKeyRotateBytes are the bytes signed for action (ActionKeyRotate
// by the current key, ActionKeyRotateSuccessor by the successor).
func OperatorKeyRotateBytes(r *OperatorKeyRotate, action string) []byte {
	return append([]byte(SelfServiceTag), canonicalJSON(struct {
		Action         string `json:"action"`
		NewOperatorPub string `json:"new_operator_pub"`
		Nonce          string `json:"nonce"`
		OperatorPub    string `json:"operator_pub"`
		TS             int64  `json:"ts"`
	}{action, r.NewOperatorPub, r.Nonce, r.OperatorPub, r.TS})...)
}

// SignOperatorKeyRotate builds a rotation from cur to next for a
// directory's challenge nonce at ts (unix seconds).
func SignOperatorKeyRotate(cur, next ed25519.PrivateKey, nonce string, ts int64) OperatorKeyRotate {
	enc := base64.StdEncoding.EncodeToString
	r := OperatorKeyRotate{Action: ActionKeyRotate, OperatorPub: enc(cur.Public().(ed25519.PublicKey)),
		NewOperatorPub: enc(next.Public().(ed25519.PublicKey)), Nonce: nonce, TS: ts}
	r.Sig = enc(ed25519.Sign(cur, OperatorKeyRotateBytes(&r, ActionKeyRotate)))
	r.NewKeySig = enc(ed25519.Sign(next, OperatorKeyRotateBytes(&r, ActionKeyRotateSuccessor)))
	return r
}

// VerifyOperatorKeyRotate checks both signatures and returns the current
// and successor keys; the nonce and ts are the caller's to judge.
func VerifyOperatorKeyRotate(r *OperatorKeyRotate) (cur, next ed25519.PublicKey, err error) {
	if r == nil || r.Action != ActionKeyRotate || r.Nonce == "" || len(r.Nonce) > MaxDelegationField ||
		len(r.OperatorPub) > MaxDelegationField || len(r.NewOperatorPub) > MaxDelegationField ||
		len(r.Sig) > MaxDelegationField || len(r.NewKeySig) > MaxDelegationField {
		return nil, nil, ErrRotateMalformed
	}
	c, err1 := decodeB64(r.OperatorPub)
	n, err2 := decodeB64(r.NewOperatorPub)
	s1, err3 := decodeB64(r.Sig)
	s2, err4 := decodeB64(r.NewKeySig)
	if errors.Join(err1, err2, err3, err4) != nil || len(c) != ed25519.PublicKeySize || len(n) != ed25519.PublicKeySize ||
		len(s1) != ed25519.SignatureSize || len(s2) != ed25519.SignatureSize || ed25519.PublicKey(c).Equal(ed25519.PublicKey(n)) {
		return nil, nil, ErrRotateMalformed
	}
	if !ed25519.Verify(c, OperatorKeyRotateBytes(r, ActionKeyRotate), s1) {
		return nil, nil, ErrRotateSignature
	}
	if !ed25519.Verify(n, OperatorKeyRotateBytes(r, ActionKeyRotateSuccessor), s2) {
		return nil, nil, ErrRotateSuccessor
	}
	return c, n, nil
}
