package directory

import (
	"database/sql"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/httpx"
)

var uuidV4Re = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// TestDIR_REG_01_RegisterCreated also covers DIR-REG-05 (token ≥ 32 bytes),
// DIR-REG-06 (assigned UUIDv4) and DIR-ADDR-02 (observed_source_ip in ACK).
func TestDIR_REG_01_RegisterCreated(t *testing.T) {
	h := startHarness(t, nil)
	r := h.do(http.MethodPost, "/v1/register", h.regBody("node1"), nil)
	if r.status != http.StatusCreated {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	m := r.json(t)
	tok, _ := m["node_token"].(string)
	if len(tok) < 64 || !regexp.MustCompile(`^[0-9a-f]+$`).MatchString(tok) {
		t.Errorf("DIR-REG-05: node_token %d hex chars", len(tok))
	}
	if id, _ := m["node_id"].(string); !uuidV4Re.MatchString(id) {
		t.Errorf("DIR-REG-06: node_id %q is not a UUIDv4", id)
	}
	if ip, _ := m["observed_source_ip"].(string); ip != "127.0.0.1" {
		t.Errorf("DIR-ADDR-02: observed_source_ip %q", ip)
	}
	if m["expires_at"] != nil || m["directory"] != h.base || m["next_heartbeat_ms"].(float64) != 30000 {
		t.Errorf("ACK fields: %s", r.body)
	}
	// The /api twin answers the same.
	if r := h.do(http.MethodPost, "/api/v1/register", h.regBody("node2"), nil); r.status != http.StatusCreated {
		t.Errorf("/api/v1/register: %d", r.status)
	}
}

// TestDIR_REG_02_03_Validation: every invalid REGISTER is a 422
// validation_error envelope (DIR-REG-02 missing endpoint, DIR-REG-03
// missing capabilities, and the other §2.1 constraints).
func TestDIR_REG_02_03_Validation(t *testing.T) {
	h := startHarness(t, nil)
	cases := []struct {
		name  string
		edit  func(m map[string]any)
		field string
	}{
		{"DIR-REG-02 missing endpoint", func(m map[string]any) { delete(m, "endpoint") }, "endpoint"},
		{"DIR-REG-03 missing capabilities", func(m map[string]any) { delete(m, "capabilities") }, "capabilities"},
		{"empty capabilities", func(m map[string]any) { m["capabilities"] = []any{} }, "capabilities"},
		{"missing region", func(m map[string]any) { delete(m, "region") }, "region"},
		{"region too long", func(m map[string]any) { m["region"] = strings.Repeat("a", 65) }, "region"},
		{"max_concurrent 0", func(m map[string]any) { m["limits"] = map[string]any{"max_concurrent": 0} }, "limits.max_concurrent"},
		{"max_concurrent 257", func(m map[string]any) { m["limits"] = map[string]any{"max_concurrent": 257} }, "limits.max_concurrent"},
		{"bad intent", func(m map[string]any) {
			m["capabilities"] = []any{map[string]any{"intent": "chat"}}
		}, "capabilities[0].intent"},
		{"bad modality", func(m map[string]any) {
			m["capabilities"] = []any{map[string]any{"intent": "urn:iicp:intent:llm:chat:v1", "models": []string{"m"}, "max_tokens": 10, "input_modalities": []string{"smell"}}}
		}, "capabilities[0].input_modalities"},
		{"llm intent without models", func(m map[string]any) {
			m["capabilities"] = []any{map[string]any{"intent": "urn:iicp:intent:llm:chat:v1", "max_tokens": 10}}
		}, "capabilities[0].models"},
		{"ftp endpoint", func(m map[string]any) { m["endpoint"] = "ftp://node1.meshtest.net" }, "endpoint"},
		{"http endpoint", func(m map[string]any) { m["endpoint"] = "http://node1.meshtest.net:8080" }, "endpoint"},
		{"bad node_id", func(m map[string]any) { m["node_id"] = "not-a-uuid" }, "node_id"},
		{"bad transport", func(m map[string]any) { m["transport_endpoint"] = "https://x.meshtest.net" }, "transport_endpoint"},
		{"sdk conflict", func(m map[string]any) { m["sdk_version"] = "1.0.0"; m["sdk_compatibility_version"] = "1.0.1" }, "sdk_compatibility_version"},
		{"cx key without key_id", func(m map[string]any) { m["cx_public_key"] = map[string]any{"key": "x"} }, "cx_public_key"},
		{"wrong type", func(m map[string]any) { m["limits"] = map[string]any{"max_concurrent": "four"} }, "limits.max_concurrent"},
		{"prohibited intent", func(m map[string]any) {
			m["capabilities"] = []any{map[string]any{"intent": "urn:iicp:intent:social-scoring:rank:v1"}}
		}, "capabilities[0].intent"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := h.regBody("node1")
			c.edit(b)
			r := h.do(http.MethodPost, "/v1/register", b, nil)
			if r.status != http.StatusUnprocessableEntity || r.errCode(t) != "validation_error" {
				t.Fatalf("got %d %s", r.status, r.body)
			}
			if f := r.json(t)["error"].(map[string]any)["field"]; f != c.field {
				t.Errorf("field %v, want %s", f, c.field)
			}
		})
	}
}

// TestDIR_REG_IntentModifierRefused: +modifiers are refused with IICP-E028
// (iicp-semantics.md §1.5), never stripped.
func TestDIR_REG_IntentModifierRefused(t *testing.T) {
	h := startHarness(t, nil)
	b := h.regBody("node1")
	b["capabilities"] = []any{map[string]any{"intent": "urn:iicp:intent:llm:chat:v1+attested", "models": []string{"m"}, "max_tokens": 1}}
	if r := h.do(http.MethodPost, "/v1/register", b, nil); r.status != http.StatusUnprocessableEntity || r.errCode(t) != "IICP-E028" {
		t.Fatalf("got %d %s", r.status, r.body)
	}
}

// TestDIR_REG_04_LivenessProbe: no token without a passing GET /iicp/health
// over verified TLS.
func TestDIR_REG_04_LivenessProbe(t *testing.T) {
	h := startHarness(t, nil)
	cases := map[string]func(m map[string]any){
		"unreachable": func(m map[string]any) { m["endpoint"] = deadEndpoint(t) },
		"unhealthy":   func(m map[string]any) { h.node.healthy.Store(false) },
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			defer h.node.healthy.Store(true)
			b := h.regBody("node1")
			edit(b)
			r := h.do(http.MethodPost, "/v1/register", b, nil)
			if r.status != http.StatusUnprocessableEntity || r.errCode(t) != "liveness_failed" {
				t.Fatalf("got %d %s", r.status, r.body)
			}
			if strings.Contains(string(r.body), "node_token") {
				t.Fatal("token issued despite failed probe")
			}
		})
	}
}

// TestDIR_REG_04_UntrustedCertificate: a node answering with a certificate
// outside the trusted roots fails liveness (verified TLS).
func TestDIR_REG_04_UntrustedCertificate(t *testing.T) {
	node := newHealthNode(t)
	cfg := testConfig(t, node, t.TempDir())
	cfg.ExtraRootsPEM = nil // the test CA is not trusted now
	h := startWith(t, node, cfg, newFakeClock())
	r := h.do(http.MethodPost, "/v1/register", h.regBody("node1"), nil)
	if r.status != http.StatusUnprocessableEntity || r.errCode(t) != "liveness_failed" {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	if !strings.Contains(string(r.body), "TLS") {
		t.Errorf("reason should name TLS: %s", r.body)
	}
}

// TestDIR_REG_07_TokenStoredHashed reads the SQLite file: the token is
// stored only as a bcrypt hash and an HMAC index, never in plaintext.
func TestDIR_REG_07_TokenStoredHashed(t *testing.T) {
	h := startHarness(t, nil)
	id, tok := h.register(h.regBody("node1"))
	h.stop()
	db, err := sql.Open("sqlite", filepath.Join(h.cfg.StateDir, "directory.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var hash []byte
	var index, record, state string
	if err := db.QueryRow(`SELECT token_hash, token_index, record, state FROM nodes WHERE node_id = ?`, id).Scan(&hash, &index, &record, &state); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(hash), "$2a$") {
		t.Errorf("token_hash is not bcrypt: %q", hash[:4])
	}
	for _, v := range []string{string(hash), index, record, state} {
		if strings.Contains(v, tok) {
			t.Fatal("plaintext token stored")
		}
	}
}

// TestDIR_REG_08_09_AdvisoryValuesAccepted: unrecognised quantization and
// inference_engine values are not rejected.
func TestDIR_REG_08_09_AdvisoryValuesAccepted(t *testing.T) {
	h := startHarness(t, nil)
	b := h.regBody("node1")
	b["capabilities"] = []any{map[string]any{"intent": "urn:iicp:intent:llm:chat:v1", "models": []string{"m"}, "max_tokens": 4096,
		"quantization": "fp64", "inference_engine": "tensorrt"}}
	b["some_future_field"] = map[string]any{"x": 1}
	if r := h.do(http.MethodPost, "/v1/register", b, nil); r.status != http.StatusCreated {
		t.Fatalf("got %d %s", r.status, r.body)
	}
}

// TestDIR_REG_E035_NonRoutable: loopback, RFC1918, link-local, ULA, CGNAT,
// unspecified, reserved suffixes and bare names are refused before any probe.
func TestDIR_REG_E035_NonRoutable(t *testing.T) {
	h := startHarness(t, nil)
	hosts := []string{"localhost", "127.0.0.1", "10.1.2.3", "172.16.5.4", "192.168.1.1", "169.254.1.1",
		"[::1]", "[fd00::1]", "[fe80::1]", "100.64.0.1", "0.0.0.0", "[::]", "printer.local", "x.test",
		"x.example", "x.invalid", "box.lan", "svc.internal", "dockerservice", "[::ffff:10.0.0.1]"}
	for _, host := range hosts {
		t.Run(host, func(t *testing.T) {
			b := h.regBody("node1")
			b["endpoint"] = "https://" + host + ":8443"
			r := h.do(http.MethodPost, "/v1/register", b, nil)
			if r.status != http.StatusUnprocessableEntity || r.errCode(t) != "IICP-E035" {
				t.Fatalf("got %d %s", r.status, r.body)
			}
		})
	}
}

// TestDIR_REG_E035_DialTimeCheck: the resolved address is checked again at
// connect time, so a name passing the name check cannot reach a private IP.
func TestDIR_REG_E035_DialTimeCheck(t *testing.T) {
	cfg := Config{ProbeTimeout: 2 * time.Second}
	p, err := newProber(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.closeIdle()
	node := newHealthNode(t)
	err = p.health(t.Context(), "https://127.0.0.1:"+node.port)
	if err == nil || !strings.Contains(err.Error(), "non-routable") {
		t.Fatalf("dial to loopback not refused: %v", err)
	}
	for _, a := range []string{"10.0.0.1:443", "[fd12::1]:443", "100.100.1.1:443", "[fe80::1]:443"} {
		if httpx.DialControl("tcp", a, nil) == nil {
			t.Errorf("httpx.DialControl allowed %s", a)
		}
	}
	if httpx.DialControl("tcp", "203.0.113.5:443", nil) != nil {
		t.Error("httpx.DialControl refused a public address")
	}
}

// TestDIR_RL_01_RegisterRateLimit: the 61st REGISTER in a rolling 60 s
// window from one source IP is a 429 with retry_after; the window rolls.
func TestDIR_RL_01_RegisterRateLimit(t *testing.T) {
	h := startHarness(t, nil)
	for i := range 100 {
		// Junk is answered but not charged: it cannot use up the budget.
		if r := h.do(http.MethodPost, "/v1/register", "{}", nil); r.status != http.StatusUnprocessableEntity {
			t.Fatalf("junk request %d: %d", i, r.status)
		}
	}
	for i := range 60 {
		if r := h.do(http.MethodPost, "/v1/register", h.regBody("node1"), nil); r.status != http.StatusCreated {
			t.Fatalf("registration %d: %d %s", i, r.status, r.body)
		}
	}
	r := h.do(http.MethodPost, "/v1/register", h.regBody("node1"), nil)
	if r.status != http.StatusTooManyRequests || r.errCode(t) != "rate_limited" {
		t.Fatalf("61st: %d %s", r.status, r.body)
	}
	ra := r.json(t)["error"].(map[string]any)["retry_after"].(float64)
	if ra < 1 || ra > 60 || r.header.Get("Retry-After") == "" {
		t.Errorf("retry_after %v header %q", ra, r.header.Get("Retry-After"))
	}
	h.clock.Advance(61 * time.Second)
	if r := h.do(http.MethodPost, "/v1/register", h.regBody("node1"), nil); r.status != http.StatusCreated {
		t.Fatalf("after window: %d %s", r.status, r.body)
	}
}

// TestDIR_REG_Ownership covers IICP-E049/E050 at re-registration.
func TestDIR_REG_Ownership(t *testing.T) {
	h := startHarness(t, nil)
	cx := map[string]any{"algorithm": "X25519", "encoding": "base64url", "key": "abc", "key_id": "k1"}

	// A plain node: a tokenless refresh with an unchanged route is E050
	// and the owner's token keeps working (no credential rotation without
	// proof of ownership).
	id, tok := h.register(h.regBody("node1"))
	b := h.regBody("node1")
	b["node_id"] = id
	if r := h.do(http.MethodPost, "/v1/register", b, nil); r.status != http.StatusForbidden || r.errCode(t) != "IICP-E050" {
		t.Fatalf("tokenless refresh: %d %s", r.status, r.body)
	}
	if r := h.heartbeat(id, tok, nil); r.status != http.StatusOK {
		t.Errorf("owner token after a refused refresh: %d", r.status)
	}
	// Adding a cx_public_key without the token is E049.
	b["cx_public_key"] = cx
	if r := h.do(http.MethodPost, "/v1/register", b, nil); r.status != http.StatusForbidden || r.errCode(t) != "IICP-E049" {
		t.Fatalf("cx change: %d %s", r.status, r.body)
	}
	// Route change while the old endpoint still answers: E050.
	b2 := h.regBody("node2")
	b2["node_id"] = id
	if r := h.do(http.MethodPost, "/v1/register", b2, nil); r.status != http.StatusForbidden || r.errCode(t) != "IICP-E050" {
		t.Fatalf("route change: %d %s", r.status, r.body)
	}
	// A wrong current_node_token is refused.
	b2["current_node_token"] = strings.Repeat("ab", 32)
	if r := h.do(http.MethodPost, "/v1/register", b2, nil); r.status != http.StatusForbidden {
		t.Fatalf("wrong token: %d %s", r.status, r.body)
	}

	// Old endpoint verified absent: a tokenless route change is allowed.
	db := h.regBody("node3")
	db["endpoint"] = h.endpoint("node3")
	id2, _ := h.register(db)
	h.node.healthy.Store(false)
	moved := h.regBody("node4")
	moved["node_id"] = id2
	r := h.do(http.MethodPost, "/v1/register", moved, nil)
	if r.status != http.StatusUnprocessableEntity {
		// The new endpoint shares the fixture, so it fails liveness too —
		// but not with E050: ownership passed.
		t.Fatalf("expected liveness failure after ownership pass, got %d %s", r.status, r.body)
	}
	if c := r.errCode(t); c != "liveness_failed" {
		t.Fatalf("ownership gate: %s", c)
	}
	h.node.healthy.Store(true)

	// With the token, a secured node may change key and route.
	sec := h.regBody("node5")
	sec["cx_public_key"] = cx
	id3, tok3 := h.register(sec)
	sec["node_id"] = id3
	delete(sec, "cx_public_key")
	if r := h.do(http.MethodPost, "/v1/register", sec, nil); r.status != http.StatusForbidden {
		t.Fatalf("secured tokenless refresh: %d %s", r.status, r.body)
	}
	sec["current_node_token"] = tok3
	sec["endpoint"] = h.endpoint("node6")
	r = h.do(http.MethodPost, "/v1/register", sec, nil)
	if r.status != http.StatusCreated {
		t.Fatalf("owner refresh: %d %s", r.status, r.body)
	}
	if nt := r.json(t)["node_token"]; nt == tok3 {
		t.Fatal("token not rotated")
	}
}
