package interop_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/meshnode/meshnode/cx"
	"github.com/meshnode/meshnode/internal/interop"
	"github.com/meshnode/meshnode/wire"
)

// taskCount is the number of CALLs the engine answered with success.
func (h *nodeHarness) taskCount(t testing.TB) float64 {
	return h.counter(t, "meshnode_tasks_total", map[string]string{"outcome": "success", "transport": "http"})
}

// TestCX_02_KATEnvelopeThroughNode: the known-answer envelope, exactly as an
// SDK would POST it, is opened by the real bridge, runs through the engine
// (same metrics as a plaintext task) and answers the echo of the vector's
// prompt. Replaying the identical body is refused with the Tier 1 error and
// never reaches the engine again.
func TestCX_02_KATEnvelopeThroughNode(t *testing.T) {
	v := loadKAT(t).Request[0] // ascii_chat: UUID v4 task_id, chat intent
	h := startNode(t, nodeOpts{ringKey: nodePrivate(t, v.Name), ringKeyID: v.KeyID})
	if got := h.ring.PublicKey().Key; got != v.NodePublic {
		t.Fatalf("ring key %s is not the vector's", got)
	}
	var env sdkEnvelope
	if err := json.Unmarshal(v.Conf, &env); err != nil {
		t.Fatal(err)
	}
	body := sdkTaskBody(t, v.TaskID, env, false)

	// A plaintext task first: both paths must move the same engine counter.
	plain := mustJSON(t, map[string]any{"task_id": "0b7f3c1e-1111-4222-8333-444455556666", "intent": wire.IntentChat,
		"payload": json.RawMessage(chatPayload("plain")), "constraints": map[string]any{"timeout_ms": 30000, "qos": "interactive"},
		"auth": map[string]any{"node_token": testToken}})
	if st, _, b := h.post(t, plain, nil); st != http.StatusOK {
		t.Fatalf("plaintext task: %d %s", st, b)
	}
	if n := h.taskCount(t); n != 1 {
		t.Fatalf("engine counted %v plaintext tasks", n)
	}

	st, _, b := h.post(t, body, nil)
	if st != http.StatusOK {
		t.Fatalf("KAT envelope: %d %s", st, b)
	}
	r, err := interop.DecodeTaskAnswer(st, b, v.TaskID)
	if err != nil || r.Status != wire.StatusSuccess || r.TaskID != v.TaskID {
		t.Fatalf("answer %+v %v", r, err)
	}
	if !strings.Contains(string(r.Result), `"content":"hello"`) {
		t.Fatalf("echo of the decrypted prompt missing: %s", r.Result)
	}
	if n := h.taskCount(t); n != 2 {
		t.Fatalf("the encrypted task did not go through the engine path (count %v)", n)
	}
	if got := h.prov.Stats().Opened; got != 1 {
		t.Fatalf("provider opened %d envelopes", got)
	}

	// Replay of the identical body (SDK retry after success, or an attacker).
	st, _, b = h.post(t, body, nil)
	if st != http.StatusUnprocessableEntity {
		t.Fatalf("replay: %d %s", st, b)
	}
	if nested, top := envelopeCode(t, b); nested != string(wire.CodeE050) || top != nested {
		t.Fatalf("replay code %q/%q", nested, top)
	}
	if n := h.taskCount(t); n != 2 {
		t.Fatalf("replayed envelope reached the engine (count %v)", n)
	}
	if f := h.prov.Stats().Failures["replay"]; f != 1 {
		t.Fatalf("replay failures %d", f)
	}
}

// nodePrivate returns the node private key of a named request vector.
func nodePrivate(t testing.TB, name string) string {
	t.Helper()
	for _, v := range loadKAT(t).Request {
		if v.Name == name {
			return v.NodePrivate
		}
	}
	t.Fatalf("no vector %q", name)
	return ""
}

// TestCX_02_ResponseEncryptionRoundTrip: an SDK consumer that negotiates
// response encryption (the Rust client, src/client.rs) gets
// {task_id,status,iicp_conf_resp} with no plaintext result, and opens the
// whole RESPONSE with its own shared secret. Both key_id forms work: the
// spec id meshnode advertises and the "cx-" id SDK nodes use.
func TestCX_02_ResponseEncryptionRoundTrip(t *testing.T) {
	h := startNode(t, nodeOpts{})
	pk := h.ring.PublicKey()
	if !containsStr(pk.Features, cx.FeatureResponseEncryption) || pk.KeyID == "" || pk.Algorithm != "X25519" || pk.Encoding != "base64url" {
		t.Fatalf("advertised key %+v", pk)
	}
	raw, _ := b64.DecodeString(pk.Key)
	sdkID := sdkKeyID(raw)
	for i, keyID := range []string{pk.KeyID, sdkID} {
		taskID := []string{"1b7f3c1e-1111-4222-8333-444455556601", "1b7f3c1e-1111-4222-8333-444455556602"}[i]
		env, shared := sdkSeal(t, pk.Key, keyID, taskID, wire.IntentChat, chatPayload("secret question"), nil, nil)
		st, hdr, b := h.post(t, sdkTaskBody(t, taskID, env, true), map[string]string{"Authorization": "Bearer " + testToken})
		if st != http.StatusOK || hdr.Get("Content-Encoding") != "" {
			t.Fatalf("key_id %s: %d %s", keyID, st, b)
		}
		if strings.Contains(string(b), "secret question") {
			t.Fatal("sealed response carries the prompt in clear")
		}
		var outer map[string]json.RawMessage
		if err := json.Unmarshal(b, &outer); err != nil {
			t.Fatal(err)
		}
		if _, ok := outer["result"]; ok || string(outer["status"]) != `"success"` || string(outer["task_id"]) != `"`+taskID+`"` {
			t.Fatalf("outer body %s", b)
		}
		inner := sdkOpenResponse(t, shared, taskID, outer[cx.FieldConfResp])
		r, err := interop.DecodeTaskAnswer(200, inner, taskID)
		if err != nil || r.Status != wire.StatusSuccess || !strings.Contains(string(r.Result), "secret question") {
			t.Fatalf("inner RESPONSE %s (%v)", inner, err)
		}
	}
	if n := h.taskCount(t); n != 2 {
		t.Fatalf("engine counted %v tasks", n)
	}
}

// TestCX_05_TamperedCiphertext: one flipped ciphertext bit is E050 (Tier 1)
// or E062 (granular, CX-05), never a task run, never detail.
func TestCX_05_TamperedCiphertext(t *testing.T) {
	for _, granular := range []bool{false, true} {
		h := startNode(t, nodeOpts{granular: granular})
		pk := h.ring.PublicKey()
		taskID := "2b7f3c1e-1111-4222-8333-444455556601"
		env, _ := sdkSeal(t, pk.Key, pk.KeyID, taskID, wire.IntentChat, chatPayload("x"), nil, nil)
		ct, _ := b64.DecodeString(env.EncryptedBody)
		ct[0] ^= 0x01
		env.EncryptedBody = b64.EncodeToString(ct)
		want, status := wire.CodeE050, http.StatusUnprocessableEntity
		if granular {
			want, status = wire.CodeE062, wire.CodeE062.HTTPStatus()
		}
		expectCXRefusal(t, h, sdkTaskBody(t, taskID, env, false), want, status)
		// An envelope moved under another task_id fails the same way (AAD binding).
		env2, _ := sdkSeal(t, pk.Key, pk.KeyID, taskID, wire.IntentChat, chatPayload("x"), nil, nil)
		expectCXRefusal(t, h, sdkTaskBody(t, "2b7f3c1e-1111-4222-8333-444455556602", env2, false), want, status)
	}
}

// TestCX_04_WrongKey: sealed to another node's key. With that node's key_id
// the node does not know the key (E060 granular, CX-04); with this node's
// key_id the tag cannot verify (E062). Tier 1 collapses both to E050.
func TestCX_04_WrongKey(t *testing.T) {
	for _, granular := range []bool{false, true} {
		h := startNode(t, nodeOpts{granular: granular})
		other := openRing(t, "", "").PublicKey()
		mine := h.ring.PublicKey()
		for _, tc := range []struct {
			keyID string
			want  wire.Code
		}{{other.KeyID, wire.CodeE060}, {mine.KeyID, wire.CodeE062}} {
			taskID := "3b7f3c1e-1111-4222-8333-444455556601"
			env, _ := sdkSeal(t, other.Key, tc.keyID, taskID, wire.IntentChat, chatPayload("x"), nil, nil)
			want, status := wire.CodeE050, http.StatusUnprocessableEntity
			if granular {
				want, status = tc.want, tc.want.HTTPStatus()
			}
			expectCXRefusal(t, h, sdkTaskBody(t, taskID, env, false), want, status)
		}
	}
}

// TestCX_NoKeyNode: a node without CX support answers E050 (its engine
// path), not a misleading validation error.
func TestCX_NoKeyNode(t *testing.T) {
	h := startNode(t, nodeOpts{noCX: true})
	other := openRing(t, "", "").PublicKey()
	env, _ := sdkSeal(t, other.Key, other.KeyID, "4b7f3c1e-1111-4222-8333-444455556601", wire.IntentChat, chatPayload("x"), nil, nil)
	st, _, b := h.post(t, sdkTaskBody(t, "4b7f3c1e-1111-4222-8333-444455556601", env, false), nil)
	if nested, top := envelopeCode(t, b); nested != string(wire.CodeE050) || top != nested || st >= 500 {
		t.Fatalf("keyless node: %d %s", st, b)
	}
}

func expectCXRefusal(t *testing.T, h *nodeHarness, body []byte, want wire.Code, status int) {
	t.Helper()
	before := h.taskCount(t)
	st, _, b := h.post(t, body, nil)
	if st != status {
		t.Fatalf("status %d, want %d: %s", st, status, b)
	}
	nested, top := envelopeCode(t, b)
	if nested != string(want) || top != nested {
		t.Fatalf("code %q/%q, want %s", nested, top, want)
	}
	if contains(string(b), "decrypt_failed", "unknown_key", "tag", "/") {
		t.Fatalf("refusal leaks detail: %s", b)
	}
	if h.taskCount(t) != before {
		t.Fatal("a refused envelope reached the engine")
	}
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
