package cx

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// Policy is the consumer's posture towards nodes without a usable CX key.
type Policy int

const (
	// RequireEncryption refuses to send a payload to a node that advertises
	// no usable cx_public_key (fail closed, §1 and §6). The default.
	RequireEncryption Policy = iota
	// AllowPlaintext sends the CALL unencrypted to keyless nodes: the
	// transitional debugging escape hatch of §6 (IICP_CX_ALLOW_PLAINTEXT=1).
	// A node that does advertise a key is still always encrypted to.
	AllowPlaintext
)

// RecipientKey is a node's cx_public_key checked for use (§3.1, §3.2).
type RecipientKey struct {
	pub     *ecdh.PublicKey
	keyID   string
	respEnc bool
}

// ParseRecipientKey validates an advertised cx_public_key at time now:
// algorithm X25519, encoding base64url, a 32-byte key, a printable key_id
// and, when given, a not_after in the future. Anything else is "no usable
// key" and must fail closed before the task is sent (§3.2). The legacy
// meshnode names (alg, public_key) are read when the spec names are empty.
func ParseRecipientKey(k wire.CXPublicKey, now time.Time) (*RecipientKey, *wire.Error) {
	alg, key := k.Algorithm, k.Key
	if alg == "" {
		alg = k.Alg
	}
	if key == "" {
		key = k.PublicKey
	}
	if alg != Algorithm || (k.Encoding != "" && k.Encoding != Encoding) || !validKeyID(k.KeyID) {
		return nil, wire.NewError(wire.CodeE064, "node advertises no usable CX key")
	}
	raw, err := decode(key)
	if err != nil || len(raw) != keySize {
		return nil, wire.NewError(wire.CodeE064, "node advertises no usable CX key")
	}
	pub, err := ecdh.X25519().NewPublicKey(raw)
	if err != nil {
		return nil, wire.NewError(wire.CodeE064, "node advertises no usable CX key")
	}
	if k.NotAfter != "" {
		na, err := time.Parse(time.RFC3339, k.NotAfter)
		if err != nil {
			return nil, wire.NewError(wire.CodeE064, "node advertises no usable CX key")
		}
		if !now.Before(na) {
			return nil, wire.NewError(wire.CodeE063, "node's CX key has expired")
		}
	}
	return &RecipientKey{pub: pub, keyID: k.KeyID, respEnc: slices.Contains(k.Features, FeatureResponseEncryption)}, nil
}

// ResponseOpener decrypts the RESPONSE to a sealed CALL. A nil
// *ResponseOpener (plaintext path) returns bodies unchanged.
type ResponseOpener struct {
	taskID   string
	shared   []byte
	required bool
}

// Prepare turns a plain CALL JSON into the body to POST to a node whose
// discover entry carried key (nil when it advertised none):
//   - key present: the payload is encrypted to it (Seal); a key that is
//     present but unusable fails closed, whatever the policy (§3.2);
//   - key nil: RequireEncryption refuses with IICP-E064; AllowPlaintext
//     returns callJSON unchanged and a nil opener.
func Prepare(callJSON []byte, key *wire.CXPublicKey, policy Policy) ([]byte, *ResponseOpener, *wire.Error) {
	if key == nil {
		if policy == AllowPlaintext {
			return callJSON, nil, nil
		}
		return nil, nil, wire.NewError(wire.CodeE064, "node advertises no CX key; refusing to send the payload in plaintext")
	}
	rk, werr := ParseRecipientKey(*key, time.Now())
	if werr != nil {
		return nil, nil, werr
	}
	return Seal(callJSON, rk)
}

// Seal replaces the CALL's payload with an iicp_conf envelope for rk, using
// a fresh ephemeral key and nonce for every call (CX-06). When the node
// advertises response_encryption_v1 it also sets cx_response_encryption
// "required" and the opener will insist on an encrypted result (§5a.3).
func Seal(callJSON []byte, rk *RecipientKey) ([]byte, *ResponseOpener, *wire.Error) {
	top, werr := topLevel(callJSON)
	if werr != nil {
		return nil, nil, werr
	}
	if _, ok := top[FieldConf]; ok {
		return nil, nil, wire.NewError(wire.CodeValidationError, "call is already sealed").WithField(FieldConf)
	}
	taskID, werr := stringField(top, "task_id")
	if werr != nil {
		return nil, nil, werr
	}
	intent, werr := stringField(top, "intent")
	if werr != nil {
		return nil, nil, werr
	}
	raw, ok := top["payload"]
	if !ok {
		return nil, nil, wire.NewError(wire.CodeValidationError, "payload is required").WithField("payload")
	}
	// Compact like the SDKs do, so plaintext_size is the canonical length.
	var payload bytes.Buffer
	if err := json.Compact(&payload, raw); err != nil {
		return nil, nil, wire.NewError(wire.CodeValidationError, "payload is not valid JSON").WithField("payload")
	}
	env, shared, err := sealFresh(rk, taskID, intent, payload.Bytes())
	if err != nil {
		return nil, nil, wire.NewError(wire.CodeInternal, "encrypting the payload failed")
	}
	envJSON, err := json.Marshal(env)
	if err != nil {
		return nil, nil, wire.NewError(wire.CodeInternal, "encoding the envelope failed")
	}
	delete(top, "payload")
	top[FieldConf] = envJSON
	if rk.respEnc {
		top[FieldResponseEncryption] = json.RawMessage(`"` + ResponseEncryptionRequired + `"`)
	}
	body, err := json.Marshal(top)
	if err != nil {
		return nil, nil, wire.NewError(wire.CodeInternal, "encoding the sealed call failed")
	}
	return body, &ResponseOpener{taskID: taskID, shared: shared, required: rk.respEnc}, nil
}

func sealFresh(rk *RecipientKey, taskID, intent string, payload []byte) (*Envelope, []byte, error) {
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("ephemeral key: %w", err)
	}
	nonce := make([]byte, nonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return nil, nil, fmt.Errorf("nonce: %w", err)
	}
	return sealRequest(eph, rk.pub, nonce, rk.keyID, taskID, intent, payload)
}

// ResponseRequired reports whether a plaintext result will be refused.
func (o *ResponseOpener) ResponseRequired() bool { return o != nil && o.required }

// Open returns the plain RESPONSE JSON from a node's reply body. A body
// with iicp_conf_resp is decrypted and authenticated; a plaintext body is
// returned as is, except that after negotiating response encryption a
// plaintext body with a result is refused (§5a.3 "MUST reject"). Error
// bodies (no result) pass through so the caller sees the node's code.
func (o *ResponseOpener) Open(body []byte) ([]byte, *wire.Error) {
	if o == nil {
		return body, nil
	}
	top, werr := topLevel(body)
	if werr != nil {
		return nil, errE050("node response is not a JSON object")
	}
	confRaw, ok := present(top, FieldConfResp)
	if !ok {
		_, hasResult := present(top, "result")
		if o.required && hasResult {
			return nil, errE050("node returned a plaintext result after negotiating response encryption")
		}
		return body, nil
	}
	var env RespEnvelope
	if err := json.Unmarshal(confRaw, &env); err != nil {
		return nil, errE050("encrypted response could not be opened")
	}
	plain, err := openResponse(o.shared, o.taskID, &env)
	if err != nil || !json.Valid(plain) {
		return nil, errE050("encrypted response could not be opened")
	}
	return plain, nil
}
