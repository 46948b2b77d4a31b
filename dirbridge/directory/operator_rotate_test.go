package directory

import (
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"testing"
	"time"

	"github.com/meshnode/meshnode/wire"
)

func (h *harness) challenge(op ed25519.PrivateKey) resp {
	h.t.Helper()
	return h.do(http.MethodPost, "/v1/operator/challenge", map[string]string{"operator_pub": pubB64(op)}, nil)
}

func (h *harness) nonceFor(op ed25519.PrivateKey) string {
	h.t.Helper()
	r := h.challenge(op)
	if r.status != http.StatusOK || r.header.Get("Cache-Control") != "no-store" {
		h.t.Fatalf("challenge: %d %s", r.status, r.body)
	}
	return r.json(h.t)["nonce"].(string)
}

func (h *harness) rotate(req wire.OperatorKeyRotate) resp {
	h.t.Helper()
	return h.do(http.MethodPost, "/v1/operator/key/rotate", req, nil)
}

// operatorFP is the operator fingerprint discover shows for node id.
func (h *harness) operatorFP(id string) any {
	h.t.Helper()
	_, nodes := h.discover("intent=urn:iicp:intent:llm:chat:v1")
	return nodeByID(nodes, id)["operator_fingerprint"]
}

// TestDIR_OPID_KeyRotate: §3.16 operator key rotation. A challenge is
// issued only to a key that binds a registered node; a rotation needs a
// fresh single-use challenge, ts within ±300 s and both keys' signatures
// (forged successor, forged current key, unknown and replayed nonce are
// refused). It moves every linked node and the display name to the
// successor at once; the old key creates no new claims (a new node's
// delegation by it binds nothing, it gets no challenge, it cannot recover
// a node) while its delegations of already-linked nodes keep them bound to
// the successor until the overlap window closes.
func TestDIR_OPID_KeyRotate(t *testing.T) {
	h := startHarness(t, nil)
	_, oldKey, _ := ed25519.GenerateKey(rand.Reader)
	_, newKey, _ := ed25519.GenerateKey(rand.Reader)
	_, mallory, _ := ed25519.GenerateKey(rand.Reader)
	ids := testNodeIDs(3)
	toks := map[string]string{}
	for i, host := range []string{"node1", "node2"} {
		r := h.opNode(host, ids[i], oldKey, 30*24*time.Hour)
		if r.status != http.StatusCreated {
			t.Fatalf("register: %d %s", r.status, r.body)
		}
		toks[ids[i]] = r.json(t)["node_token"].(string)
	}
	now := h.clock.Now()
	ren := wire.SignRename(oldKey, "Acme Labs", now.Unix())
	if r := h.do(http.MethodPost, "/v1/operator/rename", ren, nil); r.status != http.StatusOK {
		t.Fatalf("rename: %d %s", r.status, r.body)
	}
	if r := h.challenge(mallory); r.status != http.StatusNotFound {
		t.Fatalf("challenge for an unknown key: %d", r.status)
	}
	nonce := h.nonceFor(oldKey)
	good := wire.SignOperatorKeyRotate(oldKey, newKey, nonce, now.Unix())
	badSucc := good
	badSucc.NewKeySig = wire.SignOperatorKeyRotate(oldKey, mallory, nonce, now.Unix()).NewKeySig
	badCur := wire.SignOperatorKeyRotate(mallory, newKey, nonce, now.Unix())
	badCur.OperatorPub = good.OperatorPub
	stale := wire.SignOperatorKeyRotate(oldKey, newKey, nonce, now.Add(-10*time.Minute).Unix())
	unknown := wire.SignOperatorKeyRotate(oldKey, newKey, "not-a-nonce", now.Unix())
	for name, req := range map[string]wire.OperatorKeyRotate{"forged successor": badSucc, "forged current": badCur, "stale ts": stale, "unknown nonce": unknown} {
		if r := h.rotate(req); r.status != http.StatusUnauthorized {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	r := h.rotate(good)
	if r.status != http.StatusOK || r.json(t)["nodes_moved"] != float64(2) {
		t.Fatalf("rotation: %d %s", r.status, r.body)
	}
	if r := h.rotate(good); r.status != http.StatusUnauthorized {
		t.Fatalf("replayed rotation: %d %s", r.status, r.body)
	}
	newFP := wire.OperatorFingerprint(newKey.Public().(ed25519.PublicKey))
	for _, id := range ids[:2] {
		if got := h.operatorFP(id); got != newFP {
			t.Fatalf("node %s after rotation shows operator %v, want %s", id, got, newFP)
		}
	}
	if r := h.challenge(oldKey); r.status != http.StatusNotFound {
		t.Fatalf("challenge for a rotated key: %d", r.status)
	}
	checkRotatedKeyClaims(t, h, oldKey, newKey, ids, toks, newFP)
}

// checkRotatedKeyClaims: after the rotation, the old key's delegation keeps
// a linked node on the successor during the overlap only, binds no new
// node, and signs no recovery.
func checkRotatedKeyClaims(t *testing.T, h *harness, oldKey, newKey ed25519.PrivateKey, ids []string, toks map[string]string, newFP string) {
	t.Helper()
	now := h.clock.Now()
	refresh := h.regBody("node1")
	refresh["node_id"], refresh["current_node_token"] = ids[0], toks[ids[0]]
	refresh["operator_delegation"] = wire.SignDelegation(oldKey, ids[0], now.Add(30*24*time.Hour).Unix())
	r := h.do(http.MethodPost, "/v1/register", refresh, nil)
	if r.status != http.StatusCreated || h.operatorFP(ids[0]) != newFP {
		t.Fatalf("refresh with the old key's delegation in the overlap: %d %v", r.status, h.operatorFP(ids[0]))
	}
	toks[ids[0]] = r.json(t)["node_token"].(string)
	if r := h.opNode("node3", ids[2], oldKey, time.Hour); r.status != http.StatusCreated || h.operatorFP(ids[2]) != nil {
		t.Fatalf("a new node delegated by the rotated key got bound: %d %v", r.status, h.operatorFP(ids[2]))
	}
	_, fresh, _ := ed25519.GenerateKey(rand.Reader)
	rec := h.regBody("node2")
	rec["node_id"], rec["public_key"] = ids[1], pubB64(fresh)
	rec["node_key_binding"] = wire.SignNodeKeyBinding(oldKey, wire.BindingSignerOperator, ids[1], fresh.Public().(ed25519.PublicKey), now.Unix(), now.Add(time.Hour).Unix())
	if r := h.do(http.MethodPost, "/v1/register", rec, nil); r.status != http.StatusForbidden {
		t.Fatalf("recovery signed by the rotated key: %d %s", r.status, r.body)
	}
	rec["node_key_binding"] = wire.SignNodeKeyBinding(newKey, wire.BindingSignerOperator, ids[1], fresh.Public().(ed25519.PublicKey), now.Unix(), now.Add(time.Hour).Unix())
	if r := h.do(http.MethodPost, "/v1/register", rec, nil); r.status != http.StatusCreated {
		t.Fatalf("recovery signed by the successor: %d %s", r.status, r.body)
	}
	h.clock.Advance(rotationOverlap + time.Minute)
	refresh["current_node_token"] = toks[ids[0]]
	refresh["operator_delegation"] = wire.SignDelegation(oldKey, ids[0], h.clock.Now().Add(30*24*time.Hour).Unix())
	r = h.do(http.MethodPost, "/v1/register", refresh, nil)
	if r.status != http.StatusCreated || h.operatorFP(ids[0]) != nil {
		t.Fatalf("the old key's delegation after the overlap: %d %v", r.status, h.operatorFP(ids[0]))
	}
	refresh["current_node_token"] = r.json(t)["node_token"]
	refresh["operator_delegation"] = wire.SignDelegation(newKey, ids[0], h.clock.Now().Add(time.Hour).Unix())
	if r := h.do(http.MethodPost, "/v1/register", refresh, nil); r.status != http.StatusCreated || h.operatorFP(ids[0]) != newFP {
		t.Fatalf("re-delegated by the successor: %d %v", r.status, h.operatorFP(ids[0]))
	}
}
