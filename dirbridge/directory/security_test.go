package directory

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/spectest"
)

// TestSEC_LEAK_01_02_BadInput: every kind of bad input gets the JSON error
// envelope, with no stack trace and no file path.
func TestSEC_LEAK_01_02_BadInput(t *testing.T) {
	h := startHarness(t, nil)
	huge := `{"endpoint":"` + strings.Repeat("a", maxRegisterBody) + `"}`
	cases := []struct {
		name, method, path, body string
		hdr                      map[string]string
		status                   int
	}{
		{"malformed JSON", "POST", "/v1/register", `{"endpoint":`, nil, 422},
		{"not an object", "POST", "/v1/register", `[1,2]`, nil, 422},
		{"trailing data", "POST", "/v1/register", `{} {}`, nil, 422},
		{"empty body", "POST", "/v1/register", ``, nil, 422},
		{"wrong types", "POST", "/v1/register", `{"capabilities":"chat"}`, nil, 422},
		{"huge body", "POST", "/v1/register", huge, nil, 413},
		{"wrong content type", "POST", "/v1/register", `{}`, map[string]string{"Content-Type": "text/plain"}, 415},
		{"wrong method", "GET", "/v1/register", ``, nil, 405},
		{"wrong method discover", "POST", "/v1/discover", `{}`, nil, 405},
		{"unknown route", "GET", "/v1/nope", ``, nil, 404},
		{"root", "GET", "/", ``, nil, 404},
		{"heartbeat malformed", "POST", "/v1/heartbeat", `{"node_id":`, map[string]string{"Authorization": "Bearer x"}, 422},
		{"ticket malformed", "POST", "/v1/dispatch/ticket", `nope`, nil, 422},
		{"ticket wrong type", "POST", "/v1/dispatch/ticket", `{"intent":5}`, nil, 422},
		{"DIR-CRED-01", "GET", "/v1/credits/balance", ``, nil, 401},
		{"DIR-CRED-02", "GET", "/api/v1/credits/transactions", ``, nil, 401},
		{"DIR-CRED-03", "POST", "/v1/credits/award", `{}`, nil, 401},
		{"DIR-TEL-01", "POST", "/v1/telemetry", `{}`, nil, 401},
		{"DIR-PEER-01", "POST", "/v1/peers", `{"sender_id":"x"}`, nil, 401},
		{"me bad token", "GET", "/v1/me", ``, map[string]string{"Authorization": "Bearer " + strings.Repeat("z", 500)}, 401},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hdr := map[string]string{"Content-Type": "application/json"}
			for k, v := range c.hdr {
				hdr[k] = v
			}
			var body any
			if c.body != "" {
				body = c.body
			}
			r := h.do(c.method, c.path, body, hdr)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
			}
			if r.errCode(t) == "" || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
				t.Fatalf("no envelope: %s", r.body)
			}
			checkNoLeak(t, r.body)
		})
	}
}

func checkNoLeak(t *testing.T, body []byte) {
	t.Helper()
	for _, bad := range []string{"goroutine ", "Traceback", "at line", ".go:", "/root/", "/home/", "/work/", "/tmp/", `C:\`, "panic"} {
		if bytes.Contains(body, []byte(bad)) {
			t.Errorf("SEC-LEAK: body contains %q: %s", bad, body)
		}
	}
}

// TestDIR_PROBE_01_02_SSRFGuard: loopback and RFC1918 targets are refused
// with 422 private_address; a public-looking name mapped to a live port is
// reported reachable.
func TestDIR_PROBE_01_02_SSRFGuard(t *testing.T) {
	h := startHarness(t, nil)
	for _, q := range []string{"host=127.0.0.1&port=9484", "host=10.0.0.1&port=9484", "host=localhost", "host=[::1]"} {
		r := h.do(http.MethodGet, "/v1/probe?"+q, nil, nil)
		if r.status != http.StatusUnprocessableEntity || r.errCode(t) != "private_address" {
			t.Errorf("%s: %d %s", q, r.status, r.body)
		}
	}
	r := h.do(http.MethodGet, "/v1/probe?host=node1.meshtest.net&port="+h.node.port, nil, nil)
	if m := r.json(t); r.status != http.StatusOK || m["reachable"] != true {
		t.Fatalf("reachable probe: %d %s", r.status, r.body)
	}
}

// TestDIR_PEER_01_SEC_NONCE_01_PeerExchange: unsigned → 401, bad signature
// → 403, valid → 200 with new peers, replay → 409, stale timestamp → 422.
func TestDIR_PEER_01_SEC_NONCE_01_PeerExchange(t *testing.T) {
	h := startHarness(t, nil)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	b := h.regBody("node1")
	b["public_key"] = base64.StdEncoding.EncodeToString(pub)
	sender, _ := h.register(b)
	other, _ := h.register(h.regBody("node2"))
	send := func(body map[string]any, sign bool, key ed25519.PrivateKey) resp {
		raw, _ := json.Marshal(body)
		hdr := map[string]string{"Authorization": "Bearer ignored"}
		if sign {
			hdr["X-IICP-Signature"] = hex.EncodeToString(ed25519.Sign(key, raw))
		}
		return h.do(http.MethodPost, "/v1/peers", raw, hdr)
	}
	body := map[string]any{"sender_id": sender, "known_peers": []string{}, "timestamp_ms": h.clock.Now().UnixMilli()}
	if r := send(body, false, nil); r.status != http.StatusUnauthorized {
		t.Fatalf("unsigned: %d", r.status)
	}
	_, wrong, _ := ed25519.GenerateKey(rand.Reader)
	if r := send(body, true, wrong); r.status != http.StatusForbidden {
		t.Fatalf("bad signature: %d", r.status)
	}
	r := send(body, true, priv)
	if r.status != http.StatusOK {
		t.Fatalf("valid: %d %s", r.status, r.body)
	}
	peers := r.json(t)["new_peers"].([]any)
	if len(peers) != 1 || peers[0].(map[string]any)["node_id"] != other {
		t.Fatalf("new_peers: %v", peers)
	}
	if r := send(body, true, priv); r.status != http.StatusConflict {
		t.Fatalf("SEC-NONCE-01 replay: %d", r.status)
	}
	body["timestamp_ms"] = h.clock.Now().Add(-2 * time.Minute).UnixMilli()
	if r := send(body, true, priv); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("stale: %d", r.status)
	}
}

// TestDevModeRefusedOffLoopback: dev (plaintext, private endpoints) only
// binds loopback.
func TestDevModeRefusedOffLoopback(t *testing.T) {
	_, err := New(Config{Listen: "0.0.0.0:0", StateDir: t.TempDir(), Dev: true})
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("got %v", err)
	}
	for name, cfg := range map[string]Config{
		"no state":        {Listen: "127.0.0.1:0"},
		"bad resolve":     {StateDir: t.TempDir(), Resolve: []string{"nohost"}},
		"short retention": {StateDir: t.TempDir(), AddressHistoryRetention: time.Hour},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestDevModePlaintextAndPrivateEndpoints: in dev mode a loopback http
// node registers (plain-http probe), served over plaintext HTTP.
func TestDevModePlaintextAndPrivateEndpoints(t *testing.T) {
	node := newHealthNode(t)
	plain := newPlainHealth(t)
	cfg := testConfig(t, node, t.TempDir())
	cfg.Dev = true
	h := startWith(t, node, cfg, newFakeClock())
	if h.s.TLS() || !strings.HasPrefix(h.base, "http://") {
		t.Fatal("dev mode should serve plaintext")
	}
	b := h.regBody("node1")
	b["endpoint"] = plain
	if r := h.do(http.MethodPost, "/v1/register", b, nil); r.status != http.StatusCreated {
		t.Fatalf("dev register: %d %s", r.status, r.body)
	}
}

func newPlainHealth(t *testing.T) string {
	t.Helper()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"status":"ok"}`)) })}
	ln, err := netListen()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); wg.Wait() })
	return "http://" + ln.Addr().String()
}

// TestOnChangeHook: every registration and deregistration reaches the
// federation hook after it is durable.
func TestOnChangeHook(t *testing.T) {
	node := newHealthNode(t)
	cfg := testConfig(t, node, t.TempDir())
	var mu sync.Mutex
	var kinds []ChangeKind
	s, err := New(cfg, WithOnChange(func(ev ChangeEvent) {
		mu.Lock()
		kinds = append(kinds, ev.Kind)
		mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	rec := &NodeRecord{NodeID: newUUID(), Endpoint: "https://a.example.net", Region: "eu", CIPLevel: "CIP-None"}
	if err := s.ApplyChange(t.Context(), ChangeEvent{Kind: ChangeRegister, NodeID: rec.NodeID, Record: rec, At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := s.ApplyChange(t.Context(), ChangeEvent{Kind: ChangeDeregister, NodeID: rec.NodeID, At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if len(kinds) != 2 || kinds[0] != ChangeRegister || kinds[1] != ChangeDeregister {
		t.Fatalf("hook saw %v", kinds)
	}
}

// TestRiskTaxonomyMatchesSpec keeps the embedded copy identical to the spec.
func TestRiskTaxonomyMatchesSpec(t *testing.T) {
	spec, err := os.ReadFile(spectest.Path(t, "spec", "intent-risk-taxonomy.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(spec, riskTaxonomyJSON) {
		t.Fatal("embedded intent-risk-taxonomy.json differs from the spec")
	}
	for intent, want := range map[string]string{
		"urn:iicp:intent:llm:chat:v1":                  riskMinimal,
		"urn:iicp:intent:education:tutor:v1":           riskMinimal,
		"urn:iicp:intent:education:grading:v1":         riskHigh,
		"urn:iicp:intent:x.acme:credit-scoring:v1":     riskHigh,
		"urn:iicp:intent:biometric:protected-trait:v1": riskProhibited,
		"urn:iicp:intent:creative:generate:v1":         riskTransparency,
	} {
		if got, _ := classifyIntent(intent); got != want {
			t.Errorf("%s: %s, want %s", intent, got, want)
		}
	}
}
