package interop_test

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/meshnode/meshnode/wire"
)

// This file is an SDK-side IICP-CX implementation written from the
// formulas of iicp-confidentiality.md §5/§5a.3 as the deployed SDKs apply
// them (iicp-client-python src/iicp_client/_confidentiality.py,
// iicp-client-rust src/confidentiality.rs `encrypt_payload_with_context`,
// `decrypt_response`). It shares no code with cx, so a round trip
// through the real node proves byte compatibility, not self-consistency.
// TestSDKSealer_KAT pins it to the independent known-answer vectors.

var b64 = base64.RawURLEncoding

// sdkEnvelope is iicp_conf as the SDKs build it.
type sdkEnvelope struct {
	Version        int    `json:"version"`
	RecipientKeyID string `json:"recipient_key_id"`
	KEMCiphertext  string `json:"kem_ciphertext"`
	EncryptedBody  string `json:"encrypted_body"`
	Nonce          string `json:"nonce"`
	AAD            string `json:"aad"`
	PlaintextSize  int    `json:"plaintext_size"`
}

// sdkSeal encrypts payload to the node key nodePub (base64url) the way the
// SDK consumer does; eph and nonce may be fixed (vectors) or nil (fresh).
// It returns the envelope and the shared secret for the response.
func sdkSeal(t testing.TB, nodePub, keyID, taskID, intent string, payload []byte, eph *ecdh.PrivateKey, nonce []byte) (sdkEnvelope, []byte) {
	t.Helper()
	raw, err := b64.DecodeString(nodePub)
	if err != nil {
		t.Fatalf("node key: %v", err)
	}
	pub, err := ecdh.X25519().NewPublicKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	if eph == nil {
		if eph, err = ecdh.X25519().GenerateKey(rand.Reader); err != nil {
			t.Fatal(err)
		}
	}
	if nonce == nil {
		nonce = make([]byte, 12)
		_, _ = rand.Read(nonce)
	}
	shared, err := eph.ECDH(pub)
	if err != nil {
		t.Fatal(err)
	}
	key, err := hkdf.Key(sha256.New, shared, nonce, "IICP-CX-v1"+taskID+intent, 32)
	if err != nil {
		t.Fatal(err)
	}
	aad := []byte(taskID + "|" + intent)
	ct := gcm(t, key).Seal(nil, nonce, payload, aad)
	return sdkEnvelope{Version: 1, RecipientKeyID: keyID, KEMCiphertext: b64.EncodeToString(eph.PublicKey().Bytes()),
		EncryptedBody: b64.EncodeToString(ct), Nonce: b64.EncodeToString(nonce), AAD: b64.EncodeToString(aad),
		PlaintextSize: len(payload)}, shared
}

// sdkOpenResponse opens iicp_conf_resp like the Rust client's decrypt_response.
func sdkOpenResponse(t testing.TB, shared []byte, taskID string, conf json.RawMessage) []byte {
	t.Helper()
	var env struct {
		Version       int    `json:"version"`
		Nonce         string `json:"nonce"`
		EncryptedBody string `json:"encrypted_body"`
	}
	if err := json.Unmarshal(conf, &env); err != nil || env.Version != 1 {
		t.Fatalf("iicp_conf_resp %s: %v", conf, err)
	}
	nonce, err1 := b64.DecodeString(env.Nonce)
	ct, err2 := b64.DecodeString(env.EncryptedBody)
	if err1 != nil || err2 != nil {
		t.Fatalf("iicp_conf_resp encoding: %v %v", err1, err2)
	}
	key, err := hkdf.Key(sha256.New, shared, nonce, "IICP-CX-RESP-v1"+taskID, 32)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := gcm(t, key).Open(nil, nonce, ct, []byte(taskID+"|resp"))
	if err != nil {
		t.Fatalf("SDK could not open the sealed response: %v", err)
	}
	return plain
}

func gcm(t testing.TB, key []byte) cipher.AEAD {
	t.Helper()
	blk, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	a, err := cipher.NewGCM(blk)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestSDKSealer_KAT: the test's SDK-side sealer reproduces every request
// vector byte for byte and opens every response vector.
func TestSDKSealer_KAT(t *testing.T) {
	k := loadKAT(t)
	for _, v := range k.Request {
		privRaw, _ := b64.DecodeString(v.Eph)
		priv, err := ecdh.X25519().NewPrivateKey(privRaw)
		if err != nil {
			t.Fatal(err)
		}
		nonce, _ := b64.DecodeString(v.Nonce)
		env, shared := sdkSeal(t, v.NodePublic, v.KeyID, v.TaskID, v.Intent, []byte(v.PayloadJSON), priv, nonce)
		var want sdkEnvelope
		if err := json.Unmarshal(v.Conf, &want); err != nil {
			t.Fatal(err)
		}
		if env != want || hex.EncodeToString(shared) != v.SharedHex {
			t.Errorf("%s: sealer disagrees with the vector:\n got %+v\nwant %+v", v.Name, env, want)
		}
	}
	for _, v := range k.Response {
		shared, _ := hex.DecodeString(v.SharedHex)
		if got := sdkOpenResponse(t, shared, v.TaskID, v.Conf); string(got) != v.ResponseJSON {
			t.Errorf("%s: opened %s", v.Name, got)
		}
	}
}

// sdkTaskBody is the POST /v1/task body of the Python client's submit_async
// with an encrypted payload (src/iicp_client/client.py): no payload member,
// iicp_conf beside task_id/intent/constraints/auth.
func sdkTaskBody(t testing.TB, taskID string, env sdkEnvelope, responseEnc bool) []byte {
	t.Helper()
	body := map[string]any{
		"task_id": taskID, "intent": wire.IntentChat,
		"constraints": map[string]any{"timeout_ms": 30000, "qos": "interactive"},
		"auth":        map[string]any{"node_token": testToken},
		"iicp_conf":   env,
	}
	if responseEnc {
		// Rust client: only when the node advertises response_encryption_v1.
		body["cx_response_encryption"] = "required"
	}
	return mustJSON(t, body)
}

func chatPayload(text string) []byte {
	return []byte(fmt.Sprintf(`{"messages":[{"role":"user","content":%q}]}`, text))
}

// sdkKeyID is the key_id SDK provider nodes advertise: "cx-" and the first
// 16 hex characters of SHA-256 over the raw key (docs/cx.md D1).
func sdkKeyID(raw []byte) string {
	sum := sha256.Sum256(raw)
	return "cx-" + hex.EncodeToString(sum[:])[:16]
}
