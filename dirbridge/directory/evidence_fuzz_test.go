package directory

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// fuzzEvidenceRoute posts raw as path's body with auth through the real
// route table: every answer is a JSON object, never a 5xx, and never
// echoes the input (marker "SECRET-PAYLOAD" in the seeds).
func fuzzEvidenceRoute(t *testing.T, h *harness, path, auth string, raw []byte) {
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+auth)
	rec := httptest.NewRecorder()
	h.s.Handler().ServeHTTP(rec, req)
	var m map[string]any
	if rec.Code >= 500 || json.Unmarshal(rec.Body.Bytes(), &m) != nil {
		t.Fatalf("%s: %d %s", path, rec.Code, rec.Body)
	}
	if bytes.Contains(rec.Body.Bytes(), []byte("SECRET-PAYLOAD")) {
		t.Fatalf("%s echoed its input: %s", path, rec.Body)
	}
	if rec.Code >= 400 {
		if e, ok := m["error"].(map[string]any); !ok || e["code"] == "" {
			t.Fatalf("%s: %d without an error envelope: %s", path, rec.Code, rec.Body)
		}
	}
}

// FuzzTelemetryReport: any POST /v1/telemetry body from a valid proxy
// gets a structured answer (seeds in testdata/fuzz/FuzzTelemetryReport).
func FuzzTelemetryReport(f *testing.F) {
	h := startHarness(f, nil)
	target := h.registerPeer("node1", "", nil)
	p := h.registerPeer("node2", testNodeIDs(1)[0], nil)
	f.Add([]byte(`{"node_id":"` + target.id + `","proxy_node_id":"` + p.id + `","latency_ms_observed":12.5,"tokens_observed":3,"status":"success","qos_met":true}`))
	f.Add([]byte(`{"node_id":"SECRET-PAYLOAD","proxy_node_id":"` + p.id + `","latency_ms_observed":1e309,"status":"timeout"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		fuzzEvidenceRoute(t, h, "/v1/telemetry", p.proxy, raw)
	})
}

// FuzzAuditReport: any POST /v1/audit-report body from a registered node
// gets a structured answer (seeds in testdata/fuzz/FuzzAuditReport).
func FuzzAuditReport(f *testing.F) {
	h := startHarness(f, nil)
	target := h.registerPeer("node1", "", nil)
	p := h.registerPeer("node2", "", nil)
	f.Add([]byte(`{"target_node_id":"` + target.id + `","finding":"declaration_divergence"}`))
	f.Add([]byte(`{"target_node_id":"SECRET-PAYLOAD","finding":"SECRET-PAYLOAD"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		fuzzEvidenceRoute(t, h, "/v1/audit-report", p.token, raw)
	})
}
