package directory

import (
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/wire"
)

// audit files a declaration_divergence report by p about target.
func (h *harness) audit(p peer, target string) resp {
	h.t.Helper()
	return h.do(http.MethodPost, "/v1/audit-report",
		map[string]any{"target_node_id": target, "finding": FindingDeclarationDivergence}, bearerHdr(p.token))
}

func auditVerdict(t *testing.T, r resp) (accepted bool, reason string) {
	t.Helper()
	if r.status != http.StatusAccepted {
		t.Fatalf("audit report: %d %s", r.status, r.body)
	}
	m := r.json(t)
	if m["accepted"] != true || m["outcome_v2_delta"] != 0.0 || m["delta_suppressed"] == m["integrity_evidence_accepted"] {
		t.Fatalf("audit answer: %v", m)
	}
	reason, _ = m["suppressed_reason"].(string)
	return m["integrity_evidence_accepted"] == true, reason
}

// TestDIR_AUDIT_AuthAndShape: /v1/audit-report (and /api/v1) needs the
// reporter's node token (401 without, with a forged one, with the
// proxy_token, with a token rotated away); a self-report is 422 invalid_target, a malformed body
// 422 validation_error, an unknown target 404.
func TestDIR_AUDIT_AuthAndShape(t *testing.T) {
	h := startHarness(t, nil)
	target := h.registerPeer("node1", "", nil)
	p := h.registerPeer("node2", "", nil)
	body := map[string]any{"target_node_id": target.id, "finding": FindingDeclarationDivergence}
	for name, hdr := range map[string]map[string]string{
		"none": nil, "forged": bearerHdr(strings.Repeat("ab", 32)), "proxy_token": bearerHdr(p.proxy),
	} {
		if r := h.do(http.MethodPost, "/api/v1/audit-report", body, hdr); r.status != http.StatusUnauthorized || r.errCode(t) != string(wire.CodeUnauthorized) {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	if r := h.audit(p, p.id); r.status != 422 || r.errCode(t) != string(wire.CodeInvalidTarget) {
		t.Errorf("self-report: %d %s", r.status, r.body)
	}
	for _, b := range []string{
		`{"target_node_id":"` + target.id + `","finding":"slow"}`,
		`{"target_node_id":"` + strings.Repeat("a", 37) + `","finding":"declaration_divergence"}`,
		`{"target_node_id":"-x","finding":"declaration_divergence"}`,
		`{"target_node_id":`,
	} {
		if r := h.do(http.MethodPost, "/v1/audit-report", b, bearerHdr(p.token)); r.status != 422 || r.errCode(t) != string(wire.CodeValidationError) {
			t.Errorf("%s: %d %s", b, r.status, r.body)
		}
	}
	if r := h.audit(p, "7c9e6679-7425-40de-944b-e07fc1f90aff"); r.status != http.StatusNotFound {
		t.Errorf("unknown target: %d %s", r.status, r.body)
	}
	// A token rotated away by re-registration is dead ("expired").
	b := h.regBody("node2")
	b["node_id"], b["current_node_token"] = p.id, p.token
	if r := h.do(http.MethodPost, "/v1/register", b, nil); r.status != http.StatusCreated {
		t.Fatalf("refresh: %d %s", r.status, r.body)
	}
	if r := h.audit(p, target.id); r.status != http.StatusUnauthorized {
		t.Errorf("rotated-away node token: %d %s", r.status, r.body)
	}
}

// TestREP_07_REP_08_SYB_06_07_AuditGriefingCap: a fresh reporter and a
// mature one at reputation 0.5 are acknowledged 202 but suppressed
// (REP-07, SYB-07). A replayed report on the same target within 24 h is
// 429 rate_limited. Two eligible reporters contribute integrity evidence;
// a third is suppressed by the per-target cap, and a second node of an
// operator that already reported counts as the same reporter (SYB-06).
// No report moves the target's outcome-v2 reputation or counters
// (REP-08). After 24 h the evidence leaves discover and a reporter may
// report again.
func TestREP_07_REP_08_SYB_06_07_AuditGriefingCap(t *testing.T) {
	h := startHarness(t, nil)
	target := h.registerPeer("node1", "", nil)
	_, op, _ := ed25519.GenerateKey(rand.Reader)
	ids := testNodeIDs(6)
	var rs []peer
	for i, id := range ids {
		var key ed25519.PrivateKey
		if i == 0 || i == 4 {
			key = op // rs[0] and rs[4] share one operator
		}
		rs = append(rs, h.registerPeer(testHosts[1+i%5], id, key))
		if i != 5 {
			h.earn(rs[i])
		}
	}
	if ok, why := auditVerdict(t, h.audit(rs[0], target.id)); ok || why != "reporter_too_new" {
		t.Fatalf("REP-07: fresh reporter: %v %q", ok, why)
	}
	if r := h.audit(rs[0], target.id); r.status != http.StatusTooManyRequests || r.errCode(t) != string(wire.CodeRateLimited) {
		t.Fatalf("replay within 24 h: %d %s", r.status, r.body)
	}
	h.clock.Advance(defaultReporterMinAge + time.Minute)
	if ok, why := auditVerdict(t, h.audit(rs[5], target.id)); ok || why != "reporter_reputation_below_gate" {
		t.Fatalf("REP-07: reporter at reputation 0.5: %v %q", ok, why)
	}
	for _, p := range rs[:2] {
		if ok, why := auditVerdict(t, h.audit(p, target.id)); !ok {
			t.Fatalf("eligible reporter suppressed: %q", why)
		}
	}
	if ok, why := auditVerdict(t, h.audit(rs[4], target.id)); ok || why != "same_operator_already_reported" {
		t.Fatalf("SYB-06: second node of one operator: %v %q", ok, why)
	}
	if ok, why := auditVerdict(t, h.audit(rs[2], target.id)); ok || why != "target_cap_reached" {
		t.Fatalf("SYB-06: third reporter: %v %q", ok, why)
	}
	n := h.nodeEvidence(target)
	ev, _ := n["integrity_evidence"].(map[string]any)
	if ev == nil || ev["declaration_divergence_24h"] != 2.0 || ev["basis"] != "peer_audit_report" {
		t.Fatalf("discover integrity evidence: %v", n["integrity_evidence"])
	}
	if n["reputation_score"] != 0.5 || n["completed_tasks_count"] != 0.0 {
		t.Fatalf("REP-08: audit reports moved outcome-v2: %v %v", n["reputation_score"], n["completed_tasks_count"])
	}
	h.clock.Advance(auditWindow + time.Minute)
	h.s.maintain(t.Context())
	if n := h.nodeEvidence(target); n["integrity_evidence"] != nil {
		t.Fatalf("evidence older than 24 h still shown: %v", n["integrity_evidence"])
	}
	if ok, why := auditVerdict(t, h.audit(rs[3], target.id)); !ok {
		t.Fatalf("after the window a new reporter contributes: %q", why)
	}
	metrics := string(h.do(http.MethodGet, "/metrics", nil, nil).body)
	for _, want := range []string{
		`meshnode_directory_evidence_reports_total{kind="audit_report",result="accepted"} 3`,
		`meshnode_directory_evidence_reports_total{kind="audit_report",result="suppressed_target_cap_reached"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	var rows int
	if err := h.s.evidence.db.QueryRow(`SELECT COUNT(*) FROM audit_reports`).Scan(&rows); err != nil || rows != 7 {
		t.Fatalf("AUDIT_REPORT log rows %d (%v), want every acknowledged report (7)", rows, err)
	}
}

// TestSEC_LOG_EvidenceRoutesLogNoSecrets: telemetry and audit traffic —
// valid, forged and rotated tokens, bodies with a payload-like marker —
// never puts a node token, a proxy token or body text in the log.
func TestSEC_LOG_EvidenceRoutesLogNoSecrets(t *testing.T) {
	var logs testutil.SyncBuffer
	node := newHealthNode(t)
	h := startWithLog(t, node, testConfig(t, node, t.TempDir()), newFakeClock(), &logs)
	target := h.registerPeer("node1", "", nil)
	p := h.registerPeer("node2", "", nil)
	h.telemetry(p, target.id, 50)
	h.audit(p, target.id)
	h.do(http.MethodPost, "/v1/telemetry", `{"node_id":"SECRET-PAYLOAD","proxy_node_id":"`+p.id+`","latency_ms_observed":1,"status":"success"}`, bearerHdr(p.proxy))
	h.do(http.MethodPost, "/v1/telemetry", `{}`, bearerHdr(p.token))
	h.do(http.MethodPost, "/v1/audit-report", `{"target_node_id":"SECRET-PAYLOAD","finding":"declaration_divergence"}`, bearerHdr(p.token))
	h.do(http.MethodPost, "/v1/audit-report", `{}`, bearerHdr(p.proxy))
	out := logs.String()
	for _, secret := range []string{p.token, p.proxy, target.token, target.proxy, "SECRET-PAYLOAD"} {
		if strings.Contains(out, secret) {
			t.Fatalf("log contains %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, "audit report") {
		t.Fatalf("the audit report was not logged at all:\n%s", out)
	}
}

// TestREP_06_07_ReporterAgeGateOnlyLoweredInDev: a directory outside dev
// mode refuses to start with a reporter age gate under the spec's 3 days;
// a dev directory may lower it; telemetry_alpha stays within [0.05, 0.3].
func TestREP_06_07_ReporterAgeGateOnlyLoweredInDev(t *testing.T) {
	for _, c := range []struct {
		cfg Config
		ok  bool
	}{
		{Config{StateDir: t.TempDir(), ReporterMinAge: time.Hour}, false},
		{Config{StateDir: t.TempDir(), ReporterMinAge: -1}, false},
		{Config{StateDir: t.TempDir(), ReporterMinAge: -1, Dev: true}, true},
		{Config{StateDir: t.TempDir(), TelemetryAlpha: 0.5}, false},
		{Config{StateDir: t.TempDir(), TelemetryAlpha: 0.3}, true},
	} {
		s, err := New(c.cfg)
		if (err == nil) != c.ok {
			t.Errorf("%+v: %v", c.cfg, err)
		}
		if err != nil && strings.Contains(err.Error(), "-1ns") {
			t.Errorf("error shows the internal sentinel: %v", err)
		}
		if s != nil {
			_ = s.Close()
		}
	}
}
