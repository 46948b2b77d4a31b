package directory

import (
	"database/sql"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDIR_HB_01_02_03_Heartbeat: 200 PONG with a valid token, 401 with an
// invalid one, 404 for an unknown node.
func TestDIR_HB_01_02_03_Heartbeat(t *testing.T) {
	h := startHarness(t, nil)
	id, tok := h.register(h.regBody("node1"))
	r := h.heartbeat(id, tok, map[string]any{"load": 0.25, "active_jobs": 1, "sla_p95_ms": 120})
	m := r.json(t)
	if r.status != http.StatusOK || m["ok"] != true || m["next_heartbeat_ms"].(float64) != 30000 {
		t.Fatalf("DIR-HB-01: %d %s", r.status, r.body)
	}
	if r := h.heartbeat(id, strings.Repeat("0", 64), nil); r.status != http.StatusUnauthorized || r.errCode(t) != "unauthorized" {
		t.Fatalf("DIR-HB-02 bad token: %d %s", r.status, r.body)
	}
	if r := h.do(http.MethodPost, "/v1/heartbeat", map[string]any{"node_id": id}, nil); r.status != http.StatusUnauthorized {
		t.Fatalf("DIR-HB-02 no token: %d", r.status)
	}
	if r := h.heartbeat("00000000-0000-4000-8000-000000000000", tok, nil); r.status != http.StatusNotFound || r.errCode(t) != "not_found" {
		t.Fatalf("DIR-HB-03: %d %s", r.status, r.body)
	}
	// Another node's valid token does not authorize this node.
	id2, tok2 := h.register(h.regBody("node2"))
	if r := h.heartbeat(id, tok2, nil); r.status != http.StatusUnauthorized {
		t.Fatalf("cross-node token: %d", r.status)
	}
	_ = id2
	for name, bad := range map[string]map[string]any{
		"load > 1":    {"load": 1.5},
		"negative":    {"active_jobs": -1},
		"wrong type":  {"load": "high"},
		"bad batchid": {"metrics_batch_id": "\u0001"},
	} {
		if r := h.heartbeat(id, tok, bad); r.status != http.StatusUnprocessableEntity {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
}

// TestDIR_HB_04_ExpiryAndRestore: a node silent for > 90 s leaves discover
// and bootstrap; the next heartbeat restores it with available defaulting
// to true (iicp-dir.md §3.2). Driven by the injected clock.
func TestDIR_HB_04_ExpiryAndRestore(t *testing.T) {
	h := startHarness(t, nil)
	id, tok := h.register(h.regBody("node1"))
	if _, nodes := h.discover("intent=urn:iicp:intent:llm:chat:v1"); len(nodes) != 1 {
		t.Fatalf("fresh node missing: %d", len(nodes))
	}
	h.clock.Advance(90 * time.Second)
	if _, nodes := h.discover("intent=urn:iicp:intent:llm:chat:v1"); len(nodes) != 1 {
		t.Fatal("node dropped at exactly 90 s")
	}
	h.clock.Advance(time.Second)
	if _, nodes := h.discover("intent=urn:iicp:intent:llm:chat:v1"); len(nodes) != 0 {
		t.Fatal("DIR-HB-04: stale node still discoverable")
	}
	h.s.markDormant(h.clock.Now())
	if d := h.do(http.MethodGet, "/v1/node/"+id, nil, nil).json(t); d["status"] != "dormant" || d["dormant_since"] == nil {
		t.Fatalf("node detail after expiry: %v", d["status"])
	}
	if r := h.heartbeat(id, tok, nil); r.status != http.StatusOK {
		t.Fatalf("heartbeat: %d", r.status)
	}
	_, nodes := h.discover("intent=urn:iicp:intent:llm:chat:v1")
	if len(nodes) != 1 || nodes[0]["available"] != true {
		t.Fatalf("not restored: %v", nodes)
	}
	// available:false hides the node until it reports true again.
	h.heartbeat(id, tok, map[string]any{"available": false})
	if _, nodes := h.discover("intent=urn:iicp:intent:llm:chat:v1"); len(nodes) != 0 {
		t.Fatal("DIR-DISC-03: unavailable node returned")
	}
	h.heartbeat(id, tok, nil)
	if _, nodes := h.discover("intent=urn:iicp:intent:llm:chat:v1"); len(nodes) != 1 {
		t.Fatal("available default true not applied")
	}
}

// TestDIR_LIFECYCLE_01_06: register, heartbeat, refresh with
// current_node_token, old token 401, new token 200, deregister.
func TestDIR_LIFECYCLE_01_06(t *testing.T) {
	h := startHarness(t, nil)
	b := h.regBody("node1")
	id, tok := h.register(b) // 01
	if r := h.heartbeat(id, tok, nil); r.status != http.StatusOK || r.json(t)["next_heartbeat_ms"].(float64) <= 0 {
		t.Fatalf("02: %d", r.status)
	}
	b["node_id"], b["current_node_token"] = id, tok
	r := h.do(http.MethodPost, "/api/v1/register", b, nil) // 03
	if r.status != http.StatusCreated {
		t.Fatalf("03: %d %s", r.status, r.body)
	}
	newTok := r.json(t)["node_token"].(string)
	if newTok == tok || r.json(t)["node_id"] != id {
		t.Fatal("03: token not replaced or id changed")
	}
	if r := h.heartbeat(id, tok, nil); r.status != http.StatusUnauthorized || r.errCode(t) != "unauthorized" {
		t.Fatalf("04: %d %s", r.status, r.body)
	}
	if r := h.heartbeat(id, newTok, nil); r.status != http.StatusOK || r.json(t)["ok"] != true {
		t.Fatalf("05: %d", r.status)
	}
	r = h.do(http.MethodDelete, "/v1/register", nil, bearerHdr(newTok)) // 06
	if r.status != http.StatusOK || r.json(t)["deregistered"] != true {
		t.Fatalf("06: %d %s", r.status, r.body)
	}
	if r := h.heartbeat(id, newTok, nil); r.status != http.StatusNotFound {
		t.Fatalf("after deregister: %d", r.status)
	}
	// POST /v1/deregister twin; a token of another node cannot name this one.
	id2, tok2 := h.register(h.regBody("node2"))
	_, tok3 := h.register(h.regBody("node3"))
	if r := h.do(http.MethodPost, "/v1/deregister", map[string]any{"node_id": id2}, bearerHdr(tok3)); r.status != http.StatusForbidden {
		t.Fatalf("foreign deregister: %d", r.status)
	}
	if r := h.do(http.MethodPost, "/v1/deregister", nil, bearerHdr(tok2)); r.status != http.StatusOK {
		t.Fatalf("POST deregister: %d %s", r.status, r.body)
	}
	if r := h.do(http.MethodPost, "/v1/deregister", nil, nil); r.status != http.StatusUnauthorized {
		t.Fatalf("deregister without auth: %d", r.status)
	}
}

// TestDIR_ADDR_01_07_AddressLearning: header order CF-Connecting-IP, then
// X-Forwarded-For (first), then the TCP source; heartbeats update the
// current address; history is persisted and served to nobody (GET /v1/me
// returns only the current address to its owner).
func TestDIR_ADDR_01_07_AddressLearning(t *testing.T) {
	h := startHarness(t, nil)
	r := h.do(http.MethodPost, "/v1/register", h.regBody("node1"), map[string]string{
		"X-Forwarded-For": "198.51.100.7, 10.0.0.1", "CF-Connecting-IP": "203.0.113.9"})
	m := r.json(t)
	if m["observed_source_ip"] != "203.0.113.9" {
		t.Fatalf("DIR-ADDR-05 CF first: %v", m["observed_source_ip"])
	}
	id, tok := m["node_id"].(string), m["node_token"].(string)
	h.do(http.MethodPost, "/v1/heartbeat", map[string]any{"node_id": id},
		map[string]string{"Authorization": "Bearer " + tok, "X-Forwarded-For": "198.51.100.7, 10.0.0.1"})
	me := h.do(http.MethodGet, "/v1/me", nil, bearerHdr(tok))
	mm := me.json(t)
	if me.status != http.StatusOK || mm["observed_source_ip"] != "198.51.100.7" || mm["node_id"] != id || mm["endpoint"] != h.endpoint("node1") {
		t.Fatalf("DIR-ADDR-03/04: %s", me.body)
	}
	if len(mm) != 3 {
		t.Errorf("DIR-ADDR-07: /v1/me exposes more than the current address: %s", me.body)
	}
	h.heartbeat(id, tok, nil) // raw TCP source
	if h.do(http.MethodGet, "/v1/me", nil, bearerHdr(tok)).json(t)["observed_source_ip"] != "127.0.0.1" {
		t.Error("fallback to TCP source")
	}
	if r := h.do(http.MethodGet, "/v1/me", nil, nil); r.status != http.StatusUnauthorized {
		t.Errorf("/v1/me without token: %d", r.status)
	}
	for _, p := range []string{"/v1/node/" + id, "/v1/discover?intent=urn:iicp:intent:llm:chat:v1", "/v1/bootstrap", "/v1/registry/nodes/" + id} {
		if body := string(h.do(http.MethodGet, p, nil, nil).body); strings.Contains(body, "198.51.100.7") || strings.Contains(body, "203.0.113.9") {
			t.Errorf("DIR-ADDR-07: %s leaks an observed address", p)
		}
	}
	h.stop() // flushes the write-behind batch
	db, err := sql.Open("sqlite", filepath.Join(h.cfg.StateDir, "directory.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT ip, kind FROM address_history WHERE node_id = ? ORDER BY id`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var ip, kind string
		_ = rows.Scan(&ip, &kind)
		got = append(got, kind+":"+ip)
	}
	want := "register:203.0.113.9 heartbeat:198.51.100.7 heartbeat:127.0.0.1"
	if strings.Join(got, " ") != want {
		t.Fatalf("DIR-ADDR-06 history %v, want %s", got, want)
	}
}

// TestRestartKeepsRegistrationsAndTokens: a restart reloads the index from
// SQLite; the token still authenticates (now via bcrypt, cache cold).
func TestRestartKeepsRegistrationsAndTokens(t *testing.T) {
	h := startHarness(t, nil)
	b := h.regBody("node1")
	b["extensions"] = map[string]any{"meshnode.p2p": map[string]any{"peer_id": "12D3KooW", "addrs": []string{"/ip4/203.0.113.5/udp/4001/quic-v1"}}}
	id, tok := h.register(b)
	h.heartbeat(id, tok, map[string]any{"load": 0.5})
	h.stop()
	h2 := startWith(t, h.node, h.cfg, h.clock)
	_, nodes := h2.discover("intent=urn:iicp:intent:llm:chat:v1")
	if len(nodes) != 1 || nodes[0]["node_id"] != id || nodes[0]["load"] != 0.5 {
		t.Fatalf("after restart: %v", nodes)
	}
	if _, ok := nodes[0]["extensions"].(map[string]any)["meshnode.p2p"]; !ok {
		t.Fatal("extensions lost across restart")
	}
	if r := h2.heartbeat(id, tok, nil); r.status != http.StatusOK {
		t.Fatalf("token after restart: %d", r.status)
	}
}
