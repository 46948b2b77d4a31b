package directory

import (
	"crypto/ed25519"
	"encoding/hex"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/wire/token"
)

const chat = "urn:iicp:intent:llm:chat:v1"

// TestDIR_DISC_01_11_Discover covers the discovery conformance rows.
func TestDIR_DISC_01_11_Discover(t *testing.T) {
	h := startHarness(t, nil)
	ids, toks := registerDiscoverFleet(h)
	h.heartbeat(ids["node1"], toks["node1"], map[string]any{"load": 0.9})
	checkDiscoverRanking(t, h, ids)
	checkDiscoverFilters(t, h, ids)
	checkDiscoverProbation(t, h, ids, toks)
	if _, n := h.discover("intent=urn:iicp:intent:llm:embedding:v1"); len(n) != 0 {
		t.Errorf("other intent: %d", len(n))
	}
	// DIR-DISC-11: custom intents are accepted.
	if r, _ := h.discover("intent=urn:iicp:intent:x.acme:invoice-classify:v1"); r.status != http.StatusOK {
		t.Errorf("DIR-DISC-11: %d", r.status)
	}
	for q, field := range badDiscoverQueries {
		r := h.do(http.MethodGet, "/v1/discover?"+q, nil, nil)
		if r.status != http.StatusUnprocessableEntity || r.errCode(t) != "validation_error" {
			t.Errorf("%q: %d %s", q, r.status, r.body)
		}
		if f := r.json(t)["error"].(map[string]any)["field"]; f != field {
			t.Errorf("%q: field %v", q, f)
		}
	}
}

// badDiscoverQueries: discover queries refused with a validation_error,
// and the field each names (DIR-DISC-09/10).
var badDiscoverQueries = map[string]string{
	"":                                                 "intent",         // DIR-DISC-10
	"intent=" + chat + "&min_reputation=2.0":           "min_reputation", // DIR-DISC-09
	"intent=chat":                                      "intent",
	"intent=" + chat + "&qos=fast":                     "qos",
	"intent=" + chat + "&limit=0":                      "limit",
	"intent=" + chat + "&limit=x":                      "limit",
	"intent=" + chat + "&modality=smell":               "modality",
	"intent=" + chat + "&cip_capable=maybe":            "cip_capable",
	"intent=" + chat + "&view=raw":                     "view",
	"intent=urn:iicp:intent:law-enforcement:decide:v1": "intent",
}

// registerDiscoverFleet registers node1..node4 for chat: node2 and node4
// in us-west, node4 with an image modality, a CIP policy and a CX key.
func registerDiscoverFleet(h *harness) (ids, toks map[string]string) {
	ids, toks = map[string]string{}, map[string]string{}
	for i, host := range []string{"node1", "node2", "node3", "node4"} {
		b := h.regBody(host)
		if i%2 == 1 {
			b["region"] = "us-west"
		}
		if host == "node4" {
			b["capabilities"] = []any{map[string]any{"intent": chat, "models": []string{"llava"}, "max_tokens": 4096, "input_modalities": []string{"text", "image"}}}
			b["cip_policy"] = map[string]any{"allow_remote_inference": true}
			b["cx_public_key"] = map[string]any{"algorithm": "X25519", "encoding": "base64url", "key": "AAAA", "key_id": "k-7", "features": []string{"x"}}
		}
		ids[host], toks[host] = h.register(b)
	}
	return ids, toks
}

// checkDiscoverRanking: DIR-DISC-01..08 over the fleet, node1 loaded.
func checkDiscoverRanking(t *testing.T, h *harness, ids map[string]string) {
	t.Helper()
	r, nodes := h.discover("intent=" + chat)
	if r.status != http.StatusOK || len(nodes) != 4 || r.json(t)["count"].(float64) != 4 {
		t.Fatalf("DIR-DISC-01: %d %s", r.status, r.body)
	}
	for i, n := range nodes {
		sc := n["score"].(float64)
		if sc < 0.1 || sc > 1 {
			t.Errorf("DIR-DISC-04/07: score %v", sc)
		}
		if i > 0 && nodes[i-1]["score"].(float64) < sc {
			t.Errorf("DIR-DISC-02: not sorted")
		}
		if n["available"] != true {
			t.Errorf("DIR-DISC-03")
		}
		if tier := n["reputation_tier"]; tier != "bronze" || n["cip_conformance_level"] == nil {
			t.Errorf("DIR-CIP-01/03 fields: %v", n)
		}
	}
	if nodes[len(nodes)-1]["node_id"] != ids["node1"] {
		t.Errorf("loaded node should rank last")
	}
	if got := r.header.Get("Cache-Control"); got != "public, max-age=5, s-maxage=10, stale-while-revalidate=5" {
		t.Errorf("DIR-DISC-08: %q", got)
	}
	if _, n := h.discover("intent=" + chat + "&limit=2"); len(n) != 2 {
		t.Errorf("DIR-DISC-05: %d", len(n))
	}
	if _, n := h.discover("intent=" + chat + "&limit=500"); len(n) != 4 {
		t.Errorf("DIR-DISC-05 max: %d", len(n))
	}
	// DIR-DISC-06: region-matched nodes score higher when equally loaded.
	_, n := h.discover("intent=" + chat + "&region=us-west")
	if n[0]["region"] != "us-west" {
		t.Errorf("DIR-DISC-06: first %v", n[0]["region"])
	}
}

// checkDiscoverFilters: modality, cip_capable and cx_public_key pass-through.
func checkDiscoverFilters(t *testing.T, h *harness, ids map[string]string) {
	t.Helper()
	_, n := h.discover("intent=" + chat + "&modality=image")
	if len(n) != 1 || n[0]["node_id"] != ids["node4"] {
		t.Fatalf("modality: %v", n)
	}
	if cx := n[0]["cx_public_key"].(map[string]any); cx["key_id"] != "k-7" || cx["features"] == nil || n[0]["key_ready"] != true {
		t.Errorf("cx_public_key not passed through: %v", cx)
	}
	if _, n = h.discover("intent=" + chat + "&cip_capable=1"); len(n) != 1 || n[0]["cip_conformance_level"] != "CIP-Provider" {
		t.Errorf("DIR-CIP-02: %v", n)
	}
}

// checkDiscoverProbation: probation (decision in docs/spec-decisions.md).
// While nobody has graduated, interactive answers with probationary nodes,
// at most one per source network (all four share loopback), and realtime
// stays closed; self-reported tasks alone do not graduate a node, but an
// hour later node2, with its 100 tasks, has graduated.
func checkDiscoverProbation(t *testing.T, h *harness, ids, toks map[string]string) {
	t.Helper()
	var n []map[string]any
	if _, n = h.discover("intent=" + chat + "&qos=interactive"); len(n) != 1 {
		t.Errorf("probation per-network cap: %d", len(n))
	}
	if _, n = h.discover("intent=" + chat + "&qos=realtime"); len(n) != 0 {
		t.Errorf("realtime must exclude probation: %d", len(n))
	}
	h.heartbeat(ids["node2"], toks["node2"], map[string]any{"metrics": map[string]any{"tasks_success": 100}, "metrics_batch_id": "b1"})
	h.heartbeat(ids["node2"], toks["node2"], map[string]any{"metrics": map[string]any{"tasks_success": 100}, "metrics_batch_id": "b1"})
	if m := h.do(http.MethodGet, "/v1/node/"+ids["node2"], nil, nil).json(t); m["probation"] != true || m["completed_tasks_count"].(float64) != 100 {
		t.Errorf("100 self-reported tasks alone must not graduate / batch idempotency: %v %v", m["probation"], m["completed_tasks_count"])
	}
	h.clock.Advance(time.Hour)
	for host := range ids {
		h.heartbeat(ids[host], toks[host], nil)
	}
	_, n = h.discover("intent=" + chat + "&qos=interactive")
	if len(n) != 2 || !slices.ContainsFunc(n, func(m map[string]any) bool { return m["node_id"] == ids["node2"] }) {
		t.Errorf("graduated node2 plus one probationary node: %v", n)
	}
}

// TestDIR_DISC_PublicView: view=public returns the same candidates with
// no route material (iicp-dir.md §3.4).
func TestDIR_DISC_PublicView(t *testing.T) {
	h := startHarness(t, nil)
	b := h.regBody("node1")
	b["transport_endpoint"] = "iicpsec://node1.meshtest.net:9484"
	b["cx_public_key"] = map[string]any{"algorithm": "X25519", "encoding": "base64url", "key": "SECRETKEYMATERIAL", "key_id": "k"}
	b["extensions"] = map[string]any{"meshnode.p2p": map[string]any{"addrs": []string{"/ip4/203.0.113.5/tcp/4001"}}}
	id, _ := h.register(b)
	r, nodes := h.discover("intent=" + chat + "&view=public")
	body := string(r.body)
	for _, leak := range []string{id, "node1.meshtest.net", "SECRETKEYMATERIAL", "203.0.113.5"} {
		if strings.Contains(body, leak) {
			t.Errorf("public view leaks %q", leak)
		}
	}
	m := r.json(t)
	if len(nodes) != 1 || nodes[0]["node_id_prefix"] != id[:8] || nodes[0]["key_ready"] != true ||
		m["route_fields_present"] != false || m["data_class"] != "public_presentation" {
		t.Fatalf("public view shape: %s", body)
	}
	// Registry twin by id and by prefix; unknown → 404.
	for _, p := range []string{"/v1/registry/nodes/" + id, "/api/v1/registry/nodes/" + id[:8]} {
		r := h.do(http.MethodGet, p, nil, nil)
		if r.status != http.StatusOK || strings.Contains(string(r.body), "meshtest.net") || strings.Contains(string(r.body), id) {
			t.Errorf("%s: %d %s", p, r.status, r.body)
		}
	}
	if r := h.do(http.MethodGet, "/v1/registry/nodes/ffffffff", nil, nil); r.status != http.StatusNotFound {
		t.Errorf("registry unknown: %d", r.status)
	}
}

// TestDIR_NODE_01_02_Detail also checks the DIR-NODE-HEALTH block.
func TestDIR_NODE_01_02_Detail(t *testing.T) {
	h := startHarness(t, nil)
	id, _ := h.register(h.regBody("node1"))
	r := h.do(http.MethodGet, "/v1/node/"+id, nil, nil)
	m := r.json(t)
	if r.status != http.StatusOK || m["capabilities"] == nil || m["probation"] != true {
		t.Fatalf("DIR-NODE-01: %d %s", r.status, r.body)
	}
	hb := m["health"].(map[string]any)
	for _, k := range []string{"score", "label", "observed", "confidence", "evidence_level", "latency_ms_basis", "components", "evaluated_at"} {
		if _, ok := hb[k]; !ok {
			t.Errorf("DIR-NODE-HEALTH-01: missing %s", k)
		}
	}
	comps := hb["components"].(map[string]any)
	if comps["liveness"] == nil || comps["reachability"] == nil || comps["latency"] == nil || comps["reputation"] != nil {
		t.Errorf("DIR-NODE-HEALTH-02: %v", comps)
	}
	if hb["label"] != "healthy" || hb["score"].(float64) < 85 {
		t.Errorf("DIR-NODE-HEALTH-03: %v %v", hb["label"], hb["score"])
	}
	h.clock.Advance(2 * time.Minute)
	hb = h.do(http.MethodGet, "/v1/node/"+id, nil, nil).json(t)["health"].(map[string]any)
	if hb["label"] != "offline" || hb["score"].(float64) != 0 {
		t.Errorf("DIR-NODE-HEALTH-04: %v", hb)
	}
	if r := h.do(http.MethodGet, "/v1/node/00000000-0000-4000-8000-000000000000", nil, nil); r.status != http.StatusNotFound || r.errCode(t) != "not_found" {
		t.Errorf("DIR-NODE-02: %d", r.status)
	}
}

// TestDIR_BS_01_02_Bootstrap: live peers only, freshest first, with their
// meshnode.p2p extension.
func TestDIR_BS_01_02_Bootstrap(t *testing.T) {
	h := startHarness(t, nil)
	if r := h.do(http.MethodGet, "/v1/bootstrap", nil, nil); r.status != http.StatusOK || r.json(t)["peers"] == nil {
		t.Fatalf("DIR-BS-01 empty: %s", r.body)
	}
	old, _ := h.register(h.regBody("node1"))
	h.clock.Advance(60 * time.Second)
	b := h.regBody("node2")
	b["extensions"] = map[string]any{"meshnode.p2p": map[string]any{"peer_id": "12D3KooWtest"}}
	fresh, _ := h.register(b)
	m := h.do(http.MethodGet, "/v1/bootstrap?limit=5", nil, nil).json(t)
	peers := m["peers"].([]any)
	if len(peers) != 2 || peers[0].(map[string]any)["node_id"] != fresh {
		t.Fatalf("order: %v", peers)
	}
	if p2p := peers[0].(map[string]any)["extensions"].(map[string]any)["meshnode.p2p"].(map[string]any); p2p["peer_id"] != "12D3KooWtest" {
		t.Errorf("extensions: %v", p2p)
	}
	h.clock.Advance(31 * time.Second) // old is now 91 s silent
	peers = h.do(http.MethodGet, "/api/v1/bootstrap", nil, nil).json(t)["peers"].([]any)
	if len(peers) != 1 || peers[0].(map[string]any)["node_id"] == old {
		t.Fatalf("DIR-BS-02: stale peer returned: %v", peers)
	}
}

// TestDIR_STATS_01: mesh_health is an object with score, label, window.
func TestDIR_STATS_01(t *testing.T) {
	h := startHarness(t, nil)
	for _, host := range []string{"node1", "node2", "node3"} {
		h.register(h.regBody(host))
	}
	m := h.do(http.MethodGet, "/api/v1/stats", nil, nil).json(t)
	mh := m["mesh_health"].(map[string]any)
	sc, ok := mh["score"].(float64)
	if !ok || sc < 0 || sc > 1 || mh["label"] != "healthy" || mh["window"] != "live" {
		t.Fatalf("mesh_health: %v", mh)
	}
	if m["server"].(map[string]any)["active_nodes"].(float64) != 3 {
		t.Errorf("active_nodes: %v", m["server"])
	}
}

// TestDIR_DISPATCH_01_05_Tickets covers ticketed dispatch safety and checks
// issued tickets verify under the directory key like the fixture vectors.
func TestDIR_DISPATCH_01_05_Tickets(t *testing.T) {
	h := startHarness(t, nil)
	id1, _ := h.register(h.regBody("node1"))
	id2, _ := h.register(h.regBody("node2"))
	keyHex := h.do(http.MethodGet, "/v1/directory-key", nil, nil).json(t)["public_key"].(string)
	pub, _ := hex.DecodeString(keyHex)

	for _, path := range []string{"/v1/dispatch/ticket", "/api/v1/dispatch/ticket"} {
		r := h.do(http.MethodPost, path, map[string]any{"intent": chat}, nil)
		m := r.json(t)
		if r.status != http.StatusCreated || m["prompt_payload_accepted"] != false || m["route_fields_present"] != true {
			t.Fatalf("DIR-DISPATCH-01 %s: %d %s", path, r.status, r.body)
		}
		c, err := token.VerifyRouteTicket([]ed25519.PublicKey{pub}, m["ticket"].(string), h.base, m["node_id"].(string), chat, h.clock.Now())
		if err != nil {
			t.Fatalf("ticket does not verify with iss=%s: %v", h.base, err)
		}
		if !regexp.MustCompile(`^[0-9a-f]{24}$`).MatchString(c.JTI) || m["ticket_id_prefix"] != c.JTI[:12] {
			t.Errorf("jti %q", c.JTI)
		}
		if m["route"].(map[string]any)["endpoint"] == nil {
			t.Errorf("route missing")
		}
	}
	// Excluding both nodes leaves no route: 404 no_route_available.
	r := h.do(http.MethodPost, "/v1/dispatch/ticket", map[string]any{"intent": chat, "exclude_node_id_prefixes": []string{id1[:8], id2[:8]}}, nil)
	if r.status != http.StatusNotFound || r.errCode(t) != "no_route_available" {
		t.Fatalf("exclusion: %d %s", r.status, r.body)
	}
	r = h.do(http.MethodPost, "/v1/dispatch/ticket", map[string]any{"intent": chat, "node_id": id2}, nil)
	if r.status != http.StatusCreated || r.json(t)["node_id"] != id2 {
		t.Fatalf("selector: %d %s", r.status, r.body)
	}
	const secret = "TELL-ME-THE-SECRET-PLAN"
	for name, body := range map[string]map[string]any{
		"DIR-DISPATCH-02 high risk":  {"intent": "urn:iicp:intent:medical:diagnosis:v1"},
		"DIR-DISPATCH-02 prohibited": {"intent": "urn:iicp:intent:x.acme:social-scoring:v1"},
		"DIR-DISPATCH-03 prompt":     {"intent": chat, "prompt": secret},
		"DIR-DISPATCH-03 messages":   {"intent": chat, "Messages": []any{map[string]any{"content": secret}}},
		"DIR-DISPATCH-04 both":       {"intent": chat, "node_id": id1, "node_id_prefix": id1[:8]},
		"DIR-DISPATCH-05 qos":        {"intent": chat, "qos": "warp-speed"},
		"too many exclusions":        {"intent": chat, "exclude_node_id_prefixes": strings.Split("a,b,c,d,e,f,0,1,2,3,4", ",")},
	} {
		r := h.do(http.MethodPost, "/v1/dispatch/ticket", body, nil)
		if r.status != http.StatusUnprocessableEntity || r.errCode(t) != "validation_error" {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
		if strings.Contains(string(r.body), secret) {
			t.Errorf("%s: submitted value echoed", name)
		}
	}
}

// TestConsumerToken: Bearer-authenticated, 201 {token, expires_at}, token
// verifies as a provider must check it (iicp-dir.md §3.12).
func TestConsumerToken(t *testing.T) {
	h := startHarness(t, nil)
	caller, tok := h.register(h.regBody("node1"))
	target, _ := h.register(h.regBody("node2"))
	r := h.do(http.MethodPost, "/api/v1/consumer-token", map[string]any{"target_node_id": target, "intent": chat, "single_use": true}, bearerHdr(tok))
	m := r.json(t)
	if r.status != http.StatusCreated || m["expires_at"] == nil {
		t.Fatalf("%d %s", r.status, r.body)
	}
	pub := h.s.PublicKey()
	c, err := token.VerifyConsumer([]ed25519.PublicKey{pub}, m["token"].(string),
		token.ConsumerCheck{Audience: target, Intent: chat, Subject: caller}, h.clock.Now())
	if err != nil || c.Sub != caller || len(c.JTI) != token.JTIMinLen || time.Duration(c.Exp-c.IAT)*time.Second > token.MaxConsumerLifetime {
		t.Fatalf("verify: %v %+v", err, c)
	}
	// Each single-use token carries its own jti: two tokens for one pair differ.
	m2 := h.do(http.MethodPost, "/api/v1/consumer-token", map[string]any{"target_node_id": target, "intent": chat, "single_use": true}, bearerHdr(tok)).json(t)
	c2, err := token.VerifyConsumer([]ed25519.PublicKey{pub}, m2["token"].(string),
		token.ConsumerCheck{Audience: target, Intent: chat}, h.clock.Now())
	if err != nil || c2.JTI == c.JTI || m2["single_use"] != true {
		t.Fatalf("second token: %v %+v", err, c2)
	}
	// Without single_use (deployed SDKs): no jti, reusable until exp (§3.12).
	m3 := h.do(http.MethodPost, "/api/v1/consumer-token", map[string]any{"target_node_id": target, "intent": chat}, bearerHdr(tok)).json(t)
	c3, err := token.VerifyConsumer([]ed25519.PublicKey{pub}, m3["token"].(string),
		token.ConsumerCheck{Audience: target, Intent: chat}, h.clock.Now())
	if err != nil || c3.JTI != "" || m3["single_use"] != false {
		t.Fatalf("reusable token: %v %+v", err, c3)
	}
	if r := h.do(http.MethodPost, "/v1/consumer-token", map[string]any{"target_node_id": target, "intent": chat}, nil); r.status != http.StatusUnauthorized {
		t.Errorf("no auth: %d", r.status)
	}
	if r := h.do(http.MethodPost, "/v1/consumer-token", map[string]any{"target_node_id": "00000000-0000-4000-8000-000000000000", "intent": "*"}, bearerHdr(tok)); r.status != http.StatusNotFound {
		t.Errorf("unknown target: %d", r.status)
	}
}
