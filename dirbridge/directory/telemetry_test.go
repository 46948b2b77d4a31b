package directory

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/spectest"
	"github.com/meshnode/meshnode/wire"
)

// peer is a registered node with both of its credentials.
type peer struct{ id, token, proxy string }

// registerPeer registers host (optionally as nodeID under an operator
// key) and returns its node_token and proxy_token.
func (h *harness) registerPeer(host, nodeID string, op ed25519.PrivateKey) peer {
	h.t.Helper()
	b := h.regBody(host)
	if nodeID != "" {
		b["node_id"] = nodeID
	}
	if op != nil {
		b["operator_delegation"] = wire.SignDelegation(op, nodeID, h.clock.Now().Add(90*24*time.Hour).Unix())
	}
	r := h.do(http.MethodPost, "/v1/register", b, nil)
	if r.status != http.StatusCreated {
		h.t.Fatalf("register %s: %d %s", host, r.status, r.body)
	}
	m := r.json(h.t)
	p := peer{id: m["node_id"].(string), token: m["node_token"].(string)}
	p.proxy, _ = m["proxy_token"].(string)
	if p.proxy == "" || p.proxy == p.token {
		h.t.Fatalf("ACK without a distinct proxy_token: %s", r.body)
	}
	return p
}

var batchSeq int

// earn raises p's outcome-v2 reputation to 0.60 with one metrics batch
// of 10 successes (the +0.10 per-heartbeat cap).
func (h *harness) earn(p peer) {
	h.t.Helper()
	batchSeq++
	r := h.heartbeat(p.id, p.token, map[string]any{
		"metrics": map[string]any{"tasks_success": 10}, "metrics_batch_id": fmt.Sprintf("b-%d", batchSeq),
	})
	if r.status != http.StatusOK || r.json(h.t)["reputation_score"] != 0.6 {
		h.t.Fatalf("heartbeat: %d %s", r.status, r.body)
	}
}

// telemetry posts one observation by p about node.
func (h *harness) telemetry(p peer, node string, latency float64) resp {
	h.t.Helper()
	return h.do(http.MethodPost, "/v1/telemetry", map[string]any{
		"node_id": node, "proxy_node_id": p.id, "latency_ms_observed": latency,
		"tokens_observed": 12, "status": "success", "qos_met": true,
	}, bearerHdr(p.proxy))
}

// nodeEvidence is the discover entry of p (chat intent), after a
// heartbeat keeps it live on the advanced clock.
func (h *harness) nodeEvidence(p peer) map[string]any {
	h.t.Helper()
	if r := h.heartbeat(p.id, p.token, nil); r.status != http.StatusOK {
		h.t.Fatalf("heartbeat: %d %s", r.status, r.body)
	}
	id := p.id
	_, nodes := h.discover("intent=urn:iicp:intent:llm:chat:v1&limit=50")
	n := nodeByID(nodes, id)
	if n == nil {
		h.t.Fatalf("node %s not in discover", id)
	}
	return n
}

// TestTEL_AUTH_01_TelemetryNeedsProxyToken: POST /v1/telemetry accepts
// only the proxy_token issued at registration (a second, distinct token
// in the ACK): no token (DIR-TEL-01), the node_token (TEL-AUTH-01), a
// forged token, a token rotated away by re-registration, a missing or
// borrowed proxy_node_id are all 401 IICP-E032. The proxy_token is not a
// node token. Self-reports are 422 invalid_target, unknown nodes 404.
func TestTEL_AUTH_01_TelemetryNeedsProxyToken(t *testing.T) {
	h := startHarness(t, nil)
	target := h.registerPeer("node1", "", nil)
	ids := testNodeIDs(2)
	p := h.registerPeer("node2", ids[0], nil)
	other := h.registerPeer("node3", ids[1], nil)
	body := func(proxyID string) map[string]any {
		return map[string]any{"node_id": target.id, "proxy_node_id": proxyID, "latency_ms_observed": 120.0, "status": "success"}
	}
	forged := strings.Repeat("A", len(p.proxy))
	for name, c := range map[string]struct {
		hdr  map[string]string
		body map[string]any
	}{
		"DIR-TEL-01 no auth":        {nil, body(p.id)},
		"TEL-AUTH-01 node_token":    {bearerHdr(p.token), body(p.id)},
		"forged token":              {bearerHdr(forged), body(p.id)},
		"missing proxy_node_id":     {bearerHdr(p.proxy), body("")},
		"another node's identity":   {bearerHdr(p.proxy), body(other.id)},
		"other proxy's token for p": {bearerHdr(other.proxy), body(p.id)},
	} {
		r := h.do(http.MethodPost, "/v1/telemetry", c.body, c.hdr)
		if r.status != http.StatusUnauthorized || r.errCode(t) != string(wire.CodeE032) {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	if r := h.telemetry(p, target.id, 120); r.status != http.StatusCreated || r.json(t)["recorded"] != true {
		t.Fatalf("valid report: %d %s", r.status, r.body)
	}
	if r := h.heartbeat(p.id, p.proxy, nil); r.status != http.StatusUnauthorized {
		t.Errorf("proxy_token accepted as node token: %d", r.status)
	}
	if r := h.telemetry(p, p.id, 120); r.status != 422 || r.errCode(t) != string(wire.CodeInvalidTarget) {
		t.Errorf("self-report: %d %s", r.status, r.body)
	}
	if r := h.telemetry(p, "7c9e6679-7425-40de-944b-e07fc1f90aff", 120); r.status != http.StatusNotFound {
		t.Errorf("unknown node: %d %s", r.status, r.body)
	}
	if r := h.do(http.MethodPost, "/v1/telemetry", `{"node_id":"`+target.id+`","proxy_node_id":"`+p.id+`","latency_ms_observed":-1,"status":"success"}`,
		bearerHdr(p.proxy)); r.status != 422 || r.errCode(t) != string(wire.CodeValidationError) {
		t.Errorf("negative latency: %d %s", r.status, r.body)
	}
	// Re-registration rotates the proxy token: the old one is dead.
	b := h.regBody("node2")
	b["node_id"], b["current_node_token"] = p.id, p.token
	r := h.do(http.MethodPost, "/v1/register", b, nil)
	if r.status != http.StatusCreated {
		t.Fatalf("refresh: %d %s", r.status, r.body)
	}
	fresh := r.json(t)["proxy_token"].(string)
	if r := h.telemetry(p, target.id, 120); r.status != http.StatusUnauthorized || r.errCode(t) != string(wire.CodeE032) {
		t.Errorf("rotated-away proxy token: %d %s", r.status, r.body)
	}
	p.proxy = fresh
	if r := h.telemetry(p, target.id, 120); r.status != http.StatusCreated {
		t.Errorf("fresh proxy token: %d %s", r.status, r.body)
	}
}

// TestTEL_QUORUM_01_02_REP_06_QuorumOfEligibleProxies: reports from fresh
// proxies are recorded but never count (REP-06: 3 days, reputation ≥
// 0.55); a mature proxy with the neutral 0.5 does not count either. With
// two eligible proxies observed_latency_ms stays null (TEL-QUORUM-01);
// the third sets it to its value, later reports move it by the EMA with
// α = 0.1 (TEL-QUORUM-02). Discover shows it as latency_estimate_ms with
// basis multi_proxy_ema (DIR-EVIDENCE-02); reputation_score never moves.
func TestTEL_QUORUM_01_02_REP_06_QuorumOfEligibleProxies(t *testing.T) {
	h := startHarness(t, nil)
	target := h.registerPeer("node1", "", nil)
	var ps []peer
	for i, id := range testNodeIDs(4) {
		ps = append(ps, h.registerPeer(fmt.Sprintf("node%d", i+2), id, nil))
		if i < 3 {
			h.earn(ps[i])
		}
	}
	for _, p := range ps[:3] {
		r := h.telemetry(p, target.id, 200).json(t)
		if r["counted_toward_quorum"] != false || r["distinct_proxies"] != 0.0 || r["observed_latency_ms"] != nil {
			t.Fatalf("REP-06: fresh proxy counted: %v", r)
		}
	}
	h.clock.Advance(defaultReporterMinAge + time.Minute)
	if r := h.telemetry(ps[3], target.id, 200).json(t); r["counted_toward_quorum"] != false {
		t.Fatalf("REP-06: mature proxy at reputation 0.5 counted: %v", r)
	}
	for _, p := range ps[:2] {
		if r := h.telemetry(p, target.id, 300).json(t); r["quorum_met"] != false || r["observed_latency_ms"] != nil {
			t.Fatalf("TEL-QUORUM-01: two proxies moved the latency: %v", r)
		}
	}
	if n := h.nodeEvidence(target); n["observed_latency_ms"] != nil || n["latency_estimate_basis"] != "none" || n["latency_reporters"] != 2.0 {
		t.Fatalf("TEL-QUORUM-01: discover before quorum: %v", n)
	}
	r := h.telemetry(ps[2], target.id, 300).json(t)
	if r["quorum_met"] != true || r["distinct_proxies"] != 3.0 || r["observed_latency_ms"] != 300.0 {
		t.Fatalf("TEL-QUORUM-02: third proxy: %v", r)
	}
	h.clock.Advance(telemetrySpacing)
	if r := h.telemetry(ps[0], target.id, 400).json(t); r["observed_latency_ms"] != 310.0 {
		t.Fatalf("TEL-QUORUM-02: EMA α=0.1 of 300 and 400: %v", r)
	}
	if r := h.telemetry(ps[0], target.id, 900).json(t); r["observed_latency_ms"] != 310.0 {
		t.Fatalf("a proxy moved the EMA twice within %v: %v", telemetrySpacing, r)
	}
	failed := h.do(http.MethodPost, "/v1/telemetry", map[string]any{"node_id": target.id, "proxy_node_id": ps[1].id,
		"latency_ms_observed": 5.0, "status": "failure"}, bearerHdr(ps[1].proxy)).json(t)
	if failed["observed_latency_ms"] != 310.0 || failed["distinct_proxies"] != 3.0 {
		t.Fatalf("a failure's latency moved the EMA: %v", failed)
	}
	n := h.nodeEvidence(target)
	if n["latency_reporters"] != 3.0 || n["observed_latency_ms"] != 310.0 || n["latency_estimate_ms"] != 310.0 || n["latency_estimate_basis"] != "multi_proxy_ema" {
		t.Fatalf("discover after quorum: %v", n)
	}
	if n["reputation_score"] != 0.5 {
		t.Fatalf("telemetry moved outcome-v2 reputation: %v", n["reputation_score"])
	}
	// ADR-044 health: the observed latency replaces the missing declared
	// one (0.70 + 0.30 × (500−310)/450 = 0.8267: degraded, no longer the
	// no-evidence "healthy").
	d := h.do(http.MethodGet, "/v1/node/"+target.id, nil, nil).json(t)
	hl, _ := d["health"].(map[string]any)
	lat, _ := hl["components"].(map[string]any)["latency"].(map[string]any)
	if hl["latency_ms_basis"] != "multi_proxy_ema" || hl["score"] != 83.0 || lat["observed"] != true || d["health_label"] != "degraded" {
		t.Fatalf("node detail health after quorum: %v (label %v)", hl, d["health_label"])
	}
	// The evidence survives a restart (SQLite).
	h.stop()
	h2 := startWith(t, h.node, h.cfg, h.clock)
	if n := h2.nodeEvidence(target); n["observed_latency_ms"] != 310.0 {
		t.Fatalf("after restart: %v", n["observed_latency_ms"])
	}
	if r := h2.telemetry(ps[1], target.id, 310); r.status != http.StatusCreated {
		t.Fatalf("proxy token after restart: %d %s", r.status, r.body)
	}
}

// TestSYB_05_SybilClusterCannotMakeQuorum: one operator's five mature,
// reputable nodes are one independent reporter (distinct_proxies 1), and
// ten fresh nodes count for nothing: together they never reach the
// quorum, so the target's observed latency stays null.
func TestSYB_05_SybilClusterCannotMakeQuorum(t *testing.T) {
	h := startHarness(t, func(c *Config) { c.RegisterRateLimit = 100 })
	target := h.registerPeer("node1", "", nil)
	_, op, _ := ed25519.GenerateKey(rand.Reader)
	ids := testNodeIDs(15)
	var sybils []peer
	for i, id := range ids[:5] {
		p := h.registerPeer(testHosts[(i+1)%len(testHosts)], id, op)
		h.earn(p)
		sybils = append(sybils, p)
	}
	h.clock.Advance(defaultReporterMinAge + time.Minute)
	for i, id := range ids[5:] {
		p := h.registerPeer(testHosts[i%len(testHosts)], id, nil)
		h.earn(p)
		sybils = append(sybils, p)
	}
	for _, p := range sybils {
		r := h.telemetry(p, target.id, 5).json(t)
		if r["quorum_met"] != false || r["distinct_proxies"] != 1.0 {
			t.Fatalf("Sybil report: %v", r)
		}
	}
	if n := h.nodeEvidence(target); n["observed_latency_ms"] != nil {
		t.Fatalf("a Sybil cluster set the latency: %v", n["observed_latency_ms"])
	}
	// Reports about a node of the reporters' own operator never count.
	own := h.registerPeer("node6", ids[14][:len(ids[14])-2]+"ff", op)
	for _, p := range sybils[:5] {
		if r := h.telemetry(p, own.id, 5).json(t); r["counted_toward_quorum"] != false {
			t.Fatalf("same-operator report counted: %v", r)
		}
	}
	r := h.do(http.MethodPost, "/v1/audit-report", map[string]any{"target_node_id": own.id, "finding": "declaration_divergence"},
		bearerHdr(sybils[0].token)).json(t)
	if r["suppressed_reason"] != "reporter_same_operator_as_target" {
		t.Fatalf("same-operator audit report: %v", r)
	}
}

// TestTEL_OUTLIER_01_02_03_OutlierWeight: after quorum, a proxy with
// fewer than 10 observations is never down-weighted (TEL-OUTLIER-02);
// with 10 or more, a report above 3 × the 24 h median gets α × 0.1
// (TEL-OUTLIER-01) and one within 3 × keeps full weight (TEL-OUTLIER-03).
func TestTEL_OUTLIER_01_02_03_OutlierWeight(t *testing.T) {
	h := startHarness(t, nil)
	target := h.registerPeer("node1", "", nil)
	var ps []peer
	for i, id := range testNodeIDs(3) {
		p := h.registerPeer(fmt.Sprintf("node%d", i+2), id, nil)
		h.earn(p)
		ps = append(ps, p)
	}
	h.clock.Advance(defaultReporterMinAge + time.Minute)
	for _, p := range ps {
		h.telemetry(p, target.id, 100)
	}
	h.clock.Advance(telemetrySpacing)
	r := h.telemetry(ps[0], target.id, 500).json(t)
	if r["outlier_weight"] != 1.0 || r["observed_latency_ms"] != 140.0 {
		t.Fatalf("TEL-OUTLIER-02: new proxy flagged: %v", r)
	}
	for range 9 { // the first moves the EMA to 0.1×100 + 0.9×140 = 136
		h.telemetry(ps[1], target.id, 100)
	}
	h.clock.Advance(telemetrySpacing)
	// ps[1] now has 10 observations; the median of all is 100, so 1000
	// is an outlier: 0.01×1000 + 0.99×136 = 144.64.
	r = h.telemetry(ps[1], target.id, 1000).json(t)
	if r["outlier_weight"] != 0.1 || r["observed_latency_ms"] != 144.64 {
		t.Fatalf("TEL-OUTLIER-01: outlier at full weight: %v", r)
	}
	h.clock.Advance(telemetrySpacing)
	r = h.telemetry(ps[1], target.id, 290).json(t)
	if r["outlier_weight"] != 1.0 {
		t.Fatalf("TEL-OUTLIER-03: honest noisy report down-weighted: %v", r)
	}
}

// TestDIR_EVIDENCE_02_03_LatencyEstimateFixture runs the discovery-evidence
// fixture's latency cases through the discover view: an observed latency
// of 142.5 ms is estimate 143 with basis multi_proxy_ema, none is null
// with basis none.
func TestDIR_EVIDENCE_02_03_LatencyEstimateFixture(t *testing.T) {
	var fx struct {
		Cases []struct {
			ID    string `json:"id"`
			Input struct {
				Observed *float64 `json:"observed_latency_ms"`
			} `json:"input"`
			Expected struct {
				Estimate *int64 `json:"estimate_ms"`
				Basis    string `json:"basis"`
			} `json:"expected"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(spectest.Read(t, "fixtures", "profiles", "discovery-evidence-v1.json"), &fx); err != nil {
		t.Fatal(err)
	}
	ran := 0
	for _, c := range fx.Cases {
		if c.ID != "DIR-EVIDENCE-02" && c.ID != "DIR-EVIDENCE-03" {
			continue
		}
		b := &evidenceBook{latency: map[string]float64{}, reporters: map[string]int{}, integrity: map[string][]time.Time{}}
		if c.Input.Observed != nil {
			b.latency["n"] = *c.Input.Observed
		}
		v := b.view("n", time.Unix(1e9, 0))
		if v.LatencyBasis != c.Expected.Basis || (v.LatencyEstimateMs == nil) != (c.Expected.Estimate == nil) ||
			(v.LatencyEstimateMs != nil && *v.LatencyEstimateMs != *c.Expected.Estimate) {
			t.Errorf("%s: %+v", c.ID, v)
		}
		ran++
	}
	if ran != 2 {
		t.Fatalf("ran %d fixture cases", ran)
	}
}
