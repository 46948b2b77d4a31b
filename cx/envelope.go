package cx

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Wire names and constants of IICP-CX Tier 1 (iicp-confidentiality.md §4.1, §5, §5a.3).
const (
	// Version is the only iicp_conf.version Tier 1 defines.
	Version = 1
	// Algorithm is the only cx_public_key.algorithm Tier 1 defines.
	Algorithm = "X25519"
	// Encoding is the only cx_public_key.encoding (base64url, no padding).
	Encoding = "base64url"
	// FeatureResponseEncryption advertises §5a.3 response encryption.
	FeatureResponseEncryption = "response_encryption_v1"
	// ResponseEncryptionRequired is the cx_response_encryption value a
	// consumer sends to a node advertising FeatureResponseEncryption.
	ResponseEncryptionRequired = "required"

	// FieldConf, FieldConfResp and FieldResponseEncryption are the JSON keys
	// of the request envelope, the response envelope and the negotiation flag.
	FieldConf               = "iicp_conf"
	FieldConfResp           = "iicp_conf_resp"
	FieldResponseEncryption = "cx_response_encryption"

	infoRequest  = "IICP-CX-v1"
	infoResponse = "IICP-CX-RESP-v1"
	aadSep       = "|"
	aadResponse  = "|resp"

	keySize   = 32 // AES-256 key and X25519 point
	nonceSize = 12 // AES-GCM standard nonce
	tagSize   = 16 // AES-GCM tag

	// maxKeyIDLen bounds recipient_key_id: ours are 16 hex chars, the SDKs'
	// 19; anything far longer is not a key id.
	maxKeyIDLen = 128
)

// Envelope is the iicp_conf object of a POST /v1/task body (§4.1). All
// binary fields are base64url; the parser also accepts padded base64url
// because the Python and TypeScript SDK decoders do.
type Envelope struct {
	Version        int    `json:"version"`
	RecipientKeyID string `json:"recipient_key_id"`
	// KEMCiphertext is the consumer's ephemeral X25519 public key (32 bytes).
	KEMCiphertext string `json:"kem_ciphertext"`
	// EncryptedBody is AES-256-GCM ciphertext || tag of the payload JSON.
	EncryptedBody string `json:"encrypted_body"`
	Nonce         string `json:"nonce"`
	// AAD is base64url(UTF8(task_id + "|" + intent)).
	AAD string `json:"aad"`
	// PlaintextSize is the payload JSON length in bytes. It is not
	// authenticated, so it is informational only (see docs/cx.md).
	PlaintextSize *int64 `json:"plaintext_size,omitempty"`
}

// RespEnvelope is iicp_conf_resp (§5a.3) in the shape the SDKs exchange.
type RespEnvelope struct {
	Version       int    `json:"version"`
	Nonce         string `json:"nonce"`
	EncryptedBody string `json:"encrypted_body"`
}

// openedEnvelope is an Envelope whose fields decoded to the right sizes.
type openedEnvelope struct {
	keyID      string
	ephemeral  *ecdh.PublicKey
	ciphertext []byte
	nonce      []byte
	aad        []byte
}

var b64 = base64.RawURLEncoding

func encode(b []byte) string { return b64.EncodeToString(b) }

// decode accepts base64url with or without '=' padding and nothing else:
// no standard alphabet, no whitespace.
func decode(s string) ([]byte, error) {
	return b64.DecodeString(strings.TrimRight(s, "="))
}

// parseEnvelope decodes raw (the iicp_conf value) with type and size checks;
// it returns the failure kind so the caller maps it to a wire code.
func parseEnvelope(raw json.RawMessage) (*Envelope, failure) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil, failMalformed
	}
	var env Envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return nil, failMalformed
	}
	if env.Version != Version {
		return nil, failVersion
	}
	if !validKeyID(env.RecipientKeyID) {
		return nil, failUnknownKey
	}
	if env.PlaintextSize != nil && *env.PlaintextSize < 0 {
		return nil, failMalformed
	}
	return &env, failNone
}

// decodeFields turns the base64url fields into sized byte slices.
func (env *Envelope) decodeFields() (*openedEnvelope, failure) {
	kem, err := decode(env.KEMCiphertext)
	if err != nil || len(kem) != keySize {
		return nil, failMalformed
	}
	eph, err := ecdh.X25519().NewPublicKey(kem)
	if err != nil {
		return nil, failMalformed
	}
	nonce, err := decode(env.Nonce)
	if err != nil || len(nonce) != nonceSize {
		return nil, failMalformed
	}
	ct, err := decode(env.EncryptedBody)
	if err != nil || len(ct) < tagSize {
		return nil, failMalformed
	}
	aad, err := decode(env.AAD)
	if err != nil {
		return nil, failMalformed
	}
	return &openedEnvelope{keyID: env.RecipientKeyID, ephemeral: eph, ciphertext: ct, nonce: nonce, aad: aad}, failNone
}

// validKeyID accepts a non-empty, bounded, printable-ASCII key id: the
// value is echoed from discover, so any printable form a node chose is fine.
func validKeyID(id string) bool {
	if id == "" || len(id) > maxKeyIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

// requestAAD is UTF8(task_id + "|" + intent) (§5 step 5).
func requestAAD(taskID, intent string) []byte {
	return []byte(taskID + aadSep + intent)
}

// requestKey is HKDF-SHA256(shared, salt=nonce, info="IICP-CX-v1"||task_id||intent).
// The info has no separators (§5 step 4, and every SDK); the AAD's "|"
// is what disambiguates task_id from intent.
func requestKey(shared, nonce []byte, taskID, intent string) ([]byte, error) {
	return hkdf.Key(sha256.New, shared, nonce, infoRequest+taskID+intent, keySize)
}

// responseKey is HKDF-SHA256(shared, salt=resp_nonce, info="IICP-CX-RESP-v1"||task_id) (§5a.3).
func responseKey(shared, nonce []byte, taskID string) ([]byte, error) {
	return hkdf.Key(sha256.New, shared, nonce, infoResponse+taskID, keySize)
}

// responseAAD is UTF8(task_id + "|resp"), as the SDKs bind the response.
func responseAAD(taskID string) []byte { return []byte(taskID + aadResponse) }

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("aes: %w", err)
	}
	return cipher.NewGCM(block)
}

// errOpen is the one error a failed AEAD open yields; it carries no detail.
var errOpen = errors.New("cx: message authentication failed")

func aeadSeal(key, nonce, plaintext, aad []byte) ([]byte, error) {
	g, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	return g.Seal(nil, nonce, plaintext, aad), nil
}

func aeadOpen(key, nonce, ciphertext, aad []byte) ([]byte, error) {
	g, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	pt, err := g.Open(nil, nonce, ciphertext, aad)
	if err != nil {
		return nil, errOpen
	}
	return pt, nil
}

// sealRequest is the consumer's §5 steps 3–6 with the ephemeral key and
// nonce supplied, so known-answer tests can fix them.
func sealRequest(eph *ecdh.PrivateKey, node *ecdh.PublicKey, nonce []byte, keyID, taskID, intent string, payload []byte) (*Envelope, []byte, error) {
	shared, err := eph.ECDH(node)
	if err != nil {
		return nil, nil, fmt.Errorf("x25519: %w", err)
	}
	key, err := requestKey(shared, nonce, taskID, intent)
	if err != nil {
		return nil, nil, fmt.Errorf("hkdf: %w", err)
	}
	aad := requestAAD(taskID, intent)
	ct, err := aeadSeal(key, nonce, payload, aad)
	if err != nil {
		return nil, nil, err
	}
	size := int64(len(payload))
	return &Envelope{
		Version:        Version,
		RecipientKeyID: keyID,
		KEMCiphertext:  encode(eph.PublicKey().Bytes()),
		EncryptedBody:  encode(ct),
		Nonce:          encode(nonce),
		AAD:            encode(aad),
		PlaintextSize:  &size,
	}, shared, nil
}

// openRequest is the provider's §5 steps 3–6: it returns the payload JSON
// and the shared secret (kept for §5a.3 response encryption).
func openRequest(priv *ecdh.PrivateKey, env *openedEnvelope, taskID, intent string) ([]byte, []byte, failure) {
	// The AAD must be exactly the one the outer task_id and intent imply;
	// the SDK providers instead trust the envelope's own aad, which would let
	// a relay move a ciphertext under another task_id (docs/cx.md, D5).
	if !bytes.Equal(env.aad, requestAAD(taskID, intent)) {
		return nil, nil, failDecrypt
	}
	shared, err := priv.ECDH(env.ephemeral)
	if err != nil { // low-order point: all-zero shared secret
		return nil, nil, failDecrypt
	}
	key, err := requestKey(shared, env.nonce, taskID, intent)
	if err != nil {
		return nil, nil, failDecrypt
	}
	pt, err := aeadOpen(key, env.nonce, env.ciphertext, env.aad)
	if err != nil {
		return nil, nil, failDecrypt
	}
	return pt, shared, failNone
}

// sealResponse seals plaintext (a RESPONSE JSON) under the session secret.
func sealResponse(shared, nonce []byte, taskID string, plaintext []byte) (*RespEnvelope, error) {
	key, err := responseKey(shared, nonce, taskID)
	if err != nil {
		return nil, fmt.Errorf("hkdf: %w", err)
	}
	ct, err := aeadSeal(key, nonce, plaintext, responseAAD(taskID))
	if err != nil {
		return nil, err
	}
	return &RespEnvelope{Version: Version, Nonce: encode(nonce), EncryptedBody: encode(ct)}, nil
}

// openResponse reverses sealResponse.
func openResponse(shared []byte, taskID string, env *RespEnvelope) ([]byte, error) {
	if env.Version != 0 && env.Version != Version {
		return nil, errOpen
	}
	nonce, err := decode(env.Nonce)
	if err != nil || len(nonce) != nonceSize {
		return nil, errOpen
	}
	ct, err := decode(env.EncryptedBody)
	if err != nil || len(ct) < tagSize {
		return nil, errOpen
	}
	key, err := responseKey(shared, nonce, taskID)
	if err != nil {
		return nil, errOpen
	}
	return aeadOpen(key, nonce, ct, responseAAD(taskID))
}
