package directory

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"testing"
	"time"

	"github.com/meshnode/meshnode/wire"
	"github.com/meshnode/meshnode/wire/token"
)

// keyedNode is a test node: its Ed25519 key and REGISTER body.
type keyedNode struct {
	id   string
	priv ed25519.PrivateKey
	body map[string]any
}

func newKeyedNode(h *harness, host, id string) *keyedNode {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	n := &keyedNode{id: id, priv: priv, body: h.regBody(host)}
	n.body["node_id"], n.body["public_key"] = id, pubB64(priv)
	return n
}

func pubB64(priv ed25519.PrivateKey) string {
	return base64.StdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey))
}

// earnTasks reports n successful tasks in one metrics batch.
func (h *harness) earnTasks(id, tok, batch string, n int) {
	h.t.Helper()
	r := h.heartbeat(id, tok, map[string]any{"metrics": map[string]any{"tasks_success": n}, "metrics_batch_id": batch})
	if r.status != http.StatusOK {
		h.t.Fatalf("heartbeat: %d %s", r.status, r.body)
	}
}

func (h *harness) completed(id string) float64 {
	h.t.Helper()
	m := h.do(http.MethodGet, "/v1/node/"+id, nil, nil).json(h.t)
	v, _ := m["completed_tasks_count"].(float64)
	return v
}

// rekeyed returns n's body for a new key newPriv carrying binding b and
// no token.
func rekeyed(n *keyedNode, newPriv ed25519.PrivateKey, b wire.NodeKeyBinding) map[string]any {
	body := map[string]any{}
	for k, v := range n.body {
		body[k] = v
	}
	body["public_key"], body["node_key_binding"] = pubB64(newPriv), b
	delete(body, "current_node_token")
	return body
}

// TestDIR_REG_Continuity_DeregisteredNodeKeepsHistory: a node that
// deregisters (a machine move, a restart) and registers again with its
// retired token gets its completed-task count and reputation back; a
// REGISTER of the same node_id without the token starts from nothing and
// neither consumes nor (by deregistering) replaces the retired history.
func TestDIR_REG_Continuity_DeregisteredNodeKeepsHistory(t *testing.T) {
	h := startHarness(t, nil)
	ids := testNodeIDs(1)
	n := newKeyedNode(h, "node1", ids[0])
	id, tok := h.register(n.body)
	h.earnTasks(id, tok, "b-1", 7)
	if r := h.do(http.MethodDelete, "/v1/register", nil, bearerHdr(tok)); r.status != http.StatusOK {
		t.Fatalf("deregister: %d %s", r.status, r.body)
	}
	squat, squatTok := h.register(n.body)
	if squat != id || h.completed(id) != 0 {
		t.Fatalf("a token-less re-registration got history: %v", h.completed(id))
	}
	if r := h.do(http.MethodDelete, "/v1/register", nil, bearerHdr(squatTok)); r.status != http.StatusOK {
		t.Fatalf("deregister squatter: %d", r.status)
	}
	// The squatter's retirement does not replace the owner's: the
	// original token still brings the history back.
	n.body["current_node_token"] = tok
	if _, _ = h.register(n.body); h.completed(id) != 7 {
		t.Fatalf("the owner's history after a squatter came and went: %v, want 7", h.completed(id))
	}

	ids2 := testNodeIDs(2)
	m := newKeyedNode(h, "node2", ids2[1])
	id2, tok2 := h.register(m.body)
	h.earnTasks(id2, tok2, "b-1", 5)
	if r := h.do(http.MethodDelete, "/v1/register", nil, bearerHdr(tok2)); r.status != http.StatusOK {
		t.Fatalf("deregister: %d", r.status)
	}
	m.body["current_node_token"] = tok2
	_, tok3 := h.register(m.body)
	if got := h.completed(id2); got != 5 {
		t.Fatalf("history after re-registering with the retired token: %v, want 5", got)
	}
	h.earnTasks(id2, tok3, "b-2", 1)
	if got := h.completed(id2); got != 6 {
		t.Fatalf("history keeps growing: %v", got)
	}
}

// TestDIR_REG_Continuity_NodeKeyRotation: a node rotates its key; the new
// key registers the node_id without the token, with a binding the old key
// signed: accepted as the same node (history kept) and recorded. The same
// binding again (replay), a binding signed by another key (forgery), an
// expired one and one for another public_key are refused with IICP-E050.
func TestDIR_REG_Continuity_NodeKeyRotation(t *testing.T) {
	h := startHarness(t, nil)
	n := newKeyedNode(h, "node1", testNodeIDs(1)[0])
	id, tok := h.register(n.body)
	h.earnTasks(id, tok, "b-1", 4)
	now := h.clock.Now()
	_, next, _ := ed25519.GenerateKey(rand.Reader)
	_, mallory, _ := ed25519.GenerateKey(rand.Reader)
	pubOf := func(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }
	refused := map[string]map[string]any{
		"forged":       rekeyed(n, next, wire.SignNodeKeyBinding(mallory, wire.BindingSignerNode, id, pubOf(next), now.Unix(), now.Add(time.Hour).Unix())),
		"expired":      rekeyed(n, next, wire.SignNodeKeyBinding(n.priv, wire.BindingSignerNode, id, pubOf(next), now.Add(-2*time.Hour).Unix(), now.Add(-time.Hour).Unix())),
		"other key":    rekeyed(n, mallory, wire.SignNodeKeyBinding(n.priv, wire.BindingSignerNode, id, pubOf(next), now.Unix(), now.Add(time.Hour).Unix())),
		"not operator": rekeyed(n, next, wire.SignNodeKeyBinding(n.priv, wire.BindingSignerOperator, id, pubOf(next), now.Unix(), now.Add(time.Hour).Unix())),
	}
	for name, body := range refused {
		if r := h.do(http.MethodPost, "/v1/register", body, nil); r.status != http.StatusForbidden || r.errCode(t) != string(wire.CodeE050) {
			t.Errorf("%s binding: %d %s", name, r.status, r.body)
		}
	}
	good := rekeyed(n, next, wire.SignNodeKeyBinding(n.priv, wire.BindingSignerNode, id, pubOf(next), now.Unix(), now.Add(time.Hour).Unix()))
	if r := h.do(http.MethodPost, "/v1/register", good, nil); r.status != http.StatusCreated {
		t.Fatalf("rotation: %d %s", r.status, r.body)
	}
	if got := h.completed(id); got != 4 {
		t.Fatalf("history after rotation: %v", got)
	}
	if r := h.do(http.MethodPost, "/v1/register", good, nil); r.status != http.StatusForbidden || r.errCode(t) != string(wire.CodeE050) {
		t.Fatalf("replayed rotation: %d %s", r.status, r.body)
	}
	rec, err := h.s.KeyBindings(context.Background(), id)
	if err != nil || len(rec) != 1 || rec[0].Signer != wire.BindingSignerNode ||
		rec[0].OldKeyFP != wire.OperatorFingerprint(pubOf(n.priv)) || rec[0].NewKeyFP != wire.OperatorFingerprint(pubOf(next)) {
		t.Fatalf("recorded rotations: %v %+v", err, rec)
	}
	// The old key no longer speaks for the node: a second binding it
	// signs later is refused (the record's key is now next's).
	later := rekeyed(n, mallory, wire.SignNodeKeyBinding(n.priv, wire.BindingSignerNode, id, pubOf(mallory), now.Unix()+10, now.Add(time.Hour).Unix()))
	if r := h.do(http.MethodPost, "/v1/register", later, nil); r.status != http.StatusForbidden {
		t.Fatalf("the rotated-out key still signs for the node: %d %s", r.status, r.body)
	}
}

// TestDIR_OPID_Recovery_OperatorReDelegatesNewKey: the machine of an
// operator-bound node is lost with its key and token. The operator signs
// a recovery binding of the old node_id to a new key: the directory
// accepts the new key as the same node (history and operator binding
// kept) and records it. Another operator's recovery, a replay and a
// recovery of a node with no operator on record are refused (IICP-E050).
func TestDIR_OPID_Recovery_OperatorReDelegatesNewKey(t *testing.T) {
	h := startHarness(t, nil)
	_, op, _ := ed25519.GenerateKey(rand.Reader)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	ids := testNodeIDs(2)
	n := newKeyedNode(h, "node1", ids[0])
	n.body["operator_delegation"] = wire.SignDelegation(op, ids[0], h.clock.Now().Add(time.Hour).Unix())
	id, tok := h.register(n.body)
	h.earnTasks(id, tok, "b-1", 3)
	now := h.clock.Now()
	_, fresh, _ := ed25519.GenerateKey(rand.Reader)
	freshPub := fresh.Public().(ed25519.PublicKey)
	if r := h.do(http.MethodPost, "/v1/register", rekeyed(n, fresh,
		wire.SignNodeKeyBinding(other, wire.BindingSignerOperator, id, freshPub, now.Unix(), now.Add(time.Hour).Unix())), nil); r.status != http.StatusForbidden {
		t.Fatalf("another operator's recovery: %d %s", r.status, r.body)
	}
	body := rekeyed(n, fresh, wire.SignNodeKeyBinding(op, wire.BindingSignerOperator, id, freshPub, now.Unix(), now.Add(time.Hour).Unix()))
	body["operator_delegation"] = wire.SignDelegation(op, id, now.Add(time.Hour).Unix())
	if r := h.do(http.MethodPost, "/v1/register", body, nil); r.status != http.StatusCreated {
		t.Fatalf("operator recovery: %d %s", r.status, r.body)
	}
	if got := h.completed(id); got != 3 {
		t.Fatalf("history after recovery: %v", got)
	}
	if _, nodes := h.discover("intent=urn:iicp:intent:llm:chat:v1"); nodeByID(nodes, id)["operator_trust_tier"] != "did_key" {
		t.Fatalf("recovered node lost its operator: %v", nodeByID(nodes, id))
	}
	if r := h.do(http.MethodPost, "/v1/register", body, nil); r.status != http.StatusForbidden || r.errCode(t) != string(wire.CodeE050) {
		t.Fatalf("replayed recovery: %d %s", r.status, r.body)
	}
	if rec, err := h.s.KeyBindings(context.Background(), id); err != nil || len(rec) != 1 || rec[0].Signer != wire.BindingSignerOperator {
		t.Fatalf("recorded recovery: %v %+v", err, rec)
	}
	unbound := newKeyedNode(h, "node2", ids[1])
	h.register(unbound.body)
	if r := h.do(http.MethodPost, "/v1/register", rekeyed(unbound, fresh,
		wire.SignNodeKeyBinding(op, wire.BindingSignerOperator, ids[1], freshPub, now.Unix(), now.Add(time.Hour).Unix())), nil); r.status != http.StatusForbidden {
		t.Fatalf("recovery of a node with no operator on record: %d %s", r.status, r.body)
	}
}

// TestMembership_RotatedNodeUnderItsKey: after a recorded rotation the
// node gets a mesh membership credential for its new key under the key's
// own node_id (mesh peers derive node_id from the authenticated key); a
// public_key changed with the token alone (no binding recorded) gets none;
// on deregistration both names are revoked.
func TestMembership_RotatedNodeUnderItsKey(t *testing.T) {
	h := startHarness(t, func(c *Config) { c.MembershipTTL = time.Hour })
	_, oldKey, _ := ed25519.GenerateKey(rand.Reader)
	id := wire.NodeIDFromKey(oldKey.Public().(ed25519.PublicKey))
	n := &keyedNode{id: id, priv: oldKey, body: h.regBody("node1", chat)}
	n.body["node_id"], n.body["public_key"] = id, pubB64(oldKey)
	_, tok := h.register(n.body)
	_, next, _ := ed25519.GenerateKey(rand.Reader)
	nextPub := next.Public().(ed25519.PublicKey)
	// A token alone may change public_key, but earns no credential for it.
	claim := rekeyed(n, next, wire.NodeKeyBinding{})
	delete(claim, "node_key_binding")
	claim["current_node_token"] = tok
	_, tok = h.register(claim)
	if r := h.do(http.MethodPost, "/v1/membership", nil, bearerHdr(tok)); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("membership for an unbound key: %d %s", r.status, r.body)
	}
	now := h.clock.Now()
	n.body["public_key"] = pubB64(next) // the record's key is next now: sign as it
	b := wire.SignNodeKeyBinding(next, wire.BindingSignerNode, id, nextPub, now.Unix(), now.Add(time.Hour).Unix())
	n.priv = next
	body := rekeyed(n, next, b)
	body["current_node_token"] = tok
	_, tok = h.register(body)
	r := h.do(http.MethodPost, "/v1/membership", nil, bearerHdr(tok))
	if r.status != http.StatusCreated {
		t.Fatalf("membership after a recorded rotation: %d %s", r.status, r.body)
	}
	derived := wire.NodeIDFromKey(nextPub)
	peerID, _ := token.PeerIDFromKey(nextPub)
	if _, err := token.VerifyMembership([]ed25519.PublicKey{h.s.PublicKey()}, r.json(t)["credential"].(string),
		token.MembershipCheck{PeerID: peerID, NodeID: derived}, h.clock.Now()); err != nil {
		t.Fatalf("credential: %v", err)
	}
	if r := h.do(http.MethodPost, "/v1/deregister", nil, bearerHdr(tok)); r.status != http.StatusOK {
		t.Fatalf("deregister: %d", r.status)
	}
	rev, _ := h.do(http.MethodGet, "/v1/membership/revoked", nil, nil).json(t)["revoked"].(map[string]any)
	if rev[id] == nil || rev[derived] == nil {
		t.Fatalf("revoked: %v", rev)
	}
}

// TestDIR_REG_Continuity_RotatedBeforeFirstRegistration: a node that
// rotated its key before it ever registered here carries a binding signed
// by the key its node_id derives from: registered under that node_id, the
// binding recorded (so it gets its mesh credential); one signed by any
// other key is not recorded.
func TestDIR_REG_Continuity_RotatedBeforeFirstRegistration(t *testing.T) {
	h := startHarness(t, nil)
	_, first, _ := ed25519.GenerateKey(rand.Reader)
	_, next, _ := ed25519.GenerateKey(rand.Reader)
	_, mallory, _ := ed25519.GenerateKey(rand.Reader)
	id := wire.NodeIDFromKey(first.Public().(ed25519.PublicKey))
	now := h.clock.Now()
	n := &keyedNode{id: id, priv: first, body: h.regBody("node1", chat)}
	n.body["node_id"] = id
	forged := rekeyed(n, next, wire.SignNodeKeyBinding(mallory, wire.BindingSignerNode, id, next.Public().(ed25519.PublicKey), now.Unix(), now.Add(time.Hour).Unix()))
	_, tok := h.register(forged)
	if rec, _ := h.s.KeyBindings(context.Background(), id); len(rec) != 0 {
		t.Fatalf("a binding by an unrelated key was recorded: %+v", rec)
	}
	if r := h.do(http.MethodDelete, "/v1/register", nil, bearerHdr(tok)); r.status != http.StatusOK {
		t.Fatalf("deregister: %d", r.status)
	}
	good := rekeyed(n, next, wire.SignNodeKeyBinding(first, wire.BindingSignerNode, id, next.Public().(ed25519.PublicKey), now.Unix(), now.Add(time.Hour).Unix()))
	h.register(good)
	if rec, _ := h.s.KeyBindings(context.Background(), id); len(rec) != 1 || rec[0].Signer != wire.BindingSignerNode {
		t.Fatalf("self-certified binding not recorded: %+v", rec)
	}
}
