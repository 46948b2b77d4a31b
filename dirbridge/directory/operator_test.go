package directory

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// opNode registers host with a delegation of nodeID signed by priv
// (valid for ttl from the harness clock) and returns the node token.
func (h *harness) opNode(host, nodeID string, priv ed25519.PrivateKey, ttl time.Duration) resp {
	h.t.Helper()
	b := h.regBody(host)
	d := wire.SignDelegation(priv, nodeID, h.clock.Now().Add(ttl).Unix())
	b["node_id"], b["operator_delegation"] = nodeID, d
	return h.do(http.MethodPost, "/v1/register", b, nil)
}

func nodeByID(nodes []map[string]any, id string) map[string]any {
	for _, n := range nodes {
		if n["node_id"] == id {
			return n
		}
	}
	return nil
}

func testNodeIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("7c9e6679-7425-40de-944b-e07fc1f90a%02x", i)
	}
	return ids
}

// TestDIR_OPID_01_DiscoveryShowsOperator: a node with a valid delegation
// is operator-bound (operator_trust_tier did_key) while forged, expired
// and replayed-for-another-node delegations register the node unbound.
// The operator's signed rename sets operator_display_name and
// operator_fingerprint on discover and node detail; the key itself is
// never served. A replayed or stale rename and a rename by an operator
// with no node are refused.
func TestDIR_OPID_01_DiscoveryShowsOperator(t *testing.T) {
	h := startHarness(t, nil)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	_, mallory, _ := ed25519.GenerateKey(rand.Reader)
	ids := testNodeIDs(4)
	if r := h.opNode("node1", ids[0], priv, time.Hour); r.status != http.StatusCreated {
		t.Fatalf("delegated node: %d %s", r.status, r.body)
	}
	if r := h.opNode("node2", ids[1], priv, -time.Second); r.status != http.StatusCreated {
		t.Fatalf("expired delegation must not reject the node: %d %s", r.status, r.body)
	}
	forged := h.regBody("node3")
	d := wire.SignDelegation(priv, ids[2], h.clock.Now().Add(time.Hour).Unix())
	d.Sig = wire.SignDelegation(mallory, ids[2], d.NotAfter).Sig
	forged["node_id"], forged["operator_delegation"] = ids[2], d
	h.register(forged)
	replayed := h.regBody("node4")
	replayed["node_id"], replayed["operator_delegation"] = ids[3], wire.SignDelegation(priv, ids[0], h.clock.Now().Add(time.Hour).Unix())
	h.register(replayed)

	r, nodes := h.discover("intent=urn:iicp:intent:llm:chat:v1&limit=50")
	if tier := nodeByID(nodes, ids[0])["operator_trust_tier"]; tier != "did_key" {
		t.Fatalf("bound node tier %v", tier)
	}
	for _, id := range ids[1:] {
		if n := nodeByID(nodes, id); n == nil || n["operator_trust_tier"] != nil || n["operator_display_name"] != nil {
			t.Errorf("node %s bound by a bad delegation: %v", id, n)
		}
	}
	if n := nodeByID(nodes, ids[0]); n["operator_display_name"] != nil || n["operator_fingerprint"] != nil {
		t.Fatalf("display name before any rename: %v", n)
	}

	ts := h.clock.Now().Unix()
	rename := wire.SignRename(priv, "Acme Labs", ts)
	if r := h.do(http.MethodPost, "/v1/operator/rename", rename, nil); r.status != http.StatusOK {
		t.Fatalf("rename: %d %s", r.status, r.body)
	}
	fp := wire.OperatorFingerprint(priv.Public().(ed25519.PublicKey))
	r, nodes = h.discover("intent=urn:iicp:intent:llm:chat:v1&limit=50")
	if n := nodeByID(nodes, ids[0]); n["operator_display_name"] != "Acme Labs" || n["operator_fingerprint"] != fp {
		t.Fatalf("after rename: %v", n)
	}
	detail := h.do(http.MethodGet, "/v1/node/"+ids[0], nil, nil)
	if detail.json(t)["operator_display_name"] != "Acme Labs" {
		t.Fatalf("node detail: %s", detail.body)
	}
	pubB64 := d.OperatorPub
	for _, body := range [][]byte{r.body, detail.body} {
		if bytes.Contains(body, []byte(pubB64)) {
			t.Fatal("operator_pubkey is served")
		}
	}

	if r := h.do(http.MethodPost, "/v1/operator/rename", rename, nil); r.status != http.StatusConflict {
		t.Fatalf("replayed rename: %d %s", r.status, r.body)
	}
	stale := wire.SignRename(priv, "Old Name", ts-301)
	if r := h.do(http.MethodPost, "/v1/operator/rename", stale, nil); r.status != http.StatusUnauthorized || r.errCode(t) != "unauthorized" {
		t.Fatalf("rename outside ±300 s: %d %s", r.status, r.body)
	}
	tampered := wire.SignRename(priv, "Acme", ts+1)
	tampered.DisplayName = "Evil"
	if r := h.do(http.MethodPost, "/v1/operator/rename", tampered, nil); r.status != http.StatusUnauthorized {
		t.Fatalf("tampered rename: %d %s", r.status, r.body)
	}
	if r := h.do(http.MethodPost, "/v1/operator/rename", wire.SignRename(mallory, "Mallory", ts), nil); r.status != http.StatusNotFound {
		t.Fatalf("rename by an operator without nodes: %d %s", r.status, r.body)
	}

	// The name survives a restart (SQLite).
	h.stop()
	h2 := startWith(t, h.node, h.cfg, h.clock)
	if _, nodes := h2.discover("intent=urn:iicp:intent:llm:chat:v1&limit=50"); nodeByID(nodes, ids[0])["operator_display_name"] != "Acme Labs" {
		t.Fatalf("display name lost on restart: %v", nodeByID(nodes, ids[0]))
	}
}

// TestOperatorNodeCap: with max_nodes_per_operator 2 a
// third node delegated by the same operator is refused (403 forbidden,
// field operator_delegation) and gets no token; refreshing a bound node
// stays possible at the cap; another operator is unaffected; after a
// deregistration the operator may bind a node again.
func TestOperatorNodeCap(t *testing.T) {
	h := startHarness(t, func(c *Config) { c.MaxNodesPerOperator = 2 })
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	ids := testNodeIDs(4)
	var toks []string
	for i, id := range ids[:2] {
		r := h.opNode(fmt.Sprintf("node%d", i+1), id, priv, time.Hour)
		if r.status != http.StatusCreated {
			t.Fatalf("node %d: %d %s", i, r.status, r.body)
		}
		toks = append(toks, r.json(t)["node_token"].(string))
	}
	r := h.opNode("node3", ids[2], priv, time.Hour)
	if r.status != http.StatusForbidden || r.errCode(t) != string(wire.CodeForbidden) || bytes.Contains(r.body, []byte("node_token")) {
		t.Fatalf("third node of one operator: %d %s", r.status, r.body)
	}
	refresh := h.regBody("node1")
	refresh["node_id"], refresh["current_node_token"] = ids[0], toks[0]
	refresh["operator_delegation"] = wire.SignDelegation(priv, ids[0], h.clock.Now().Add(2*time.Hour).Unix())
	if r := h.do(http.MethodPost, "/v1/register", refresh, nil); r.status != http.StatusCreated {
		t.Fatalf("refresh at the cap: %d %s", r.status, r.body)
	}
	if r := h.opNode("node4", ids[3], other, time.Hour); r.status != http.StatusCreated {
		t.Fatalf("another operator: %d %s", r.status, r.body)
	}
	if r := h.do(http.MethodDelete, "/v1/register", nil, bearerHdr(toks[1])); r.status != http.StatusOK {
		t.Fatalf("deregister: %d %s", r.status, r.body)
	}
	if r := h.opNode("node3", ids[2], priv, time.Hour); r.status != http.StatusCreated {
		t.Fatalf("after a deregistration: %d %s", r.status, r.body)
	}
}

// TestDIR_OPID_01_DelegationLapsesAtNotAfter: short TTL is the revocation
// baseline (§3.1): once not_after passes, discovery stops presenting the
// node as the operator's (also from the cached discover encoding) and the
// node no longer counts against the operator's cap, while it stays
// secured (a token-less refresh is still IICP-E050). Its renewal while
// another node holds the operator's only slot refreshes the registration
// without binding it again.
func TestDIR_OPID_01_DelegationLapsesAtNotAfter(t *testing.T) {
	h := startHarness(t, func(c *Config) { c.MaxNodesPerOperator = 1 })
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	ids := testNodeIDs(2)
	r := h.opNode("node1", ids[0], priv, time.Hour)
	if r.status != http.StatusCreated {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	tok := r.json(t)["node_token"].(string)
	if r := h.do(http.MethodPost, "/v1/operator/rename", wire.SignRename(priv, "Acme", h.clock.Now().Unix()), nil); r.status != http.StatusOK {
		t.Fatalf("rename: %d %s", r.status, r.body)
	}
	tier := func() any {
		_, nodes := h.discover("intent=urn:iicp:intent:llm:chat:v1&limit=50")
		n := nodeByID(nodes, ids[0])
		if n == nil {
			t.Fatalf("node1 not in discover: %v", nodes)
		}
		return n["operator_trust_tier"]
	}
	if tier() != "did_key" {
		t.Fatal("not bound before not_after")
	}
	h.clock.Advance(time.Hour)
	h.heartbeat(ids[0], tok, nil) // stay live for discover
	if got := tier(); got != nil {
		t.Fatalf("still presented as the operator's after not_after: %v", got)
	}
	refresh := h.regBody("node1")
	refresh["node_id"] = ids[0]
	if r := h.do(http.MethodPost, "/v1/register", refresh, nil); r.status != http.StatusForbidden || r.errCode(t) != "IICP-E050" {
		t.Fatalf("lapsed node lost its E050 protection: %d %s", r.status, r.body)
	}
	if r := h.opNode("node2", ids[1], priv, time.Hour); r.status != http.StatusCreated {
		t.Fatalf("a lapsed node still counts against the cap: %d %s", r.status, r.body)
	}
	renew := h.regBody("node1")
	renew["node_id"], renew["current_node_token"] = ids[0], tok
	renew["operator_delegation"] = wire.SignDelegation(priv, ids[0], h.clock.Now().Add(time.Hour).Unix())
	if r := h.do(http.MethodPost, "/v1/register", renew, nil); r.status != http.StatusCreated {
		t.Fatalf("a registered node's refresh beyond the cap must not drop it: %d %s", r.status, r.body)
	}
	if got := tier(); got != nil {
		t.Fatalf("renewal beyond the cap (node2 holds the one slot) was applied: %v", got)
	}
}
