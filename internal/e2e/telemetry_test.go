package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/daemon/admin"
	"github.com/meshnode/meshnode/wire"
)

// modelBackend is an OpenAI-compatible backend serving one model.
func modelBackend(t *testing.T, model string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/models":
			_ = json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": []map[string]string{{"id": model, "object": "model"}}})
		case "/v1/chat/completions":
			_ = json.NewEncoder(w).Encode(map[string]any{
				"id": "c1", "object": "chat.completion", "model": model,
				"choices": []map[string]any{{"index": 0, "finish_reason": "stop",
					"message": map[string]string{"role": "assistant", "content": "ok"}}},
				"usage": map[string]int{"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
			})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// discoverEntry is id's entry in a chat discover (nil when absent).
func discoverEntry(t *testing.T, dirURL, id string) map[string]any {
	t.Helper()
	var nl struct {
		Nodes []map[string]any `json:"nodes"`
	}
	getJSON(t, dirURL+"/v1/discover?intent="+wire.IntentChat+"&limit=50", &nl)
	for _, n := range nl.Nodes {
		if n["node_id"] == id {
			return n
		}
	}
	return nil
}

// callModel runs `meshnode call --remote --model model` from home and
// returns the node_id that answered.
func callModel(t *testing.T, bin, home, model string) string {
	t.Helper()
	out, code := run(t, bin, 30*time.Second, "--home", home, "call", "--json", "--remote", "--qos", wire.QoSBatch,
		"--model", model, "e2e telemetry task")
	var res admin.CallResult
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Response == nil {
		t.Fatalf("call --model %s from %s: exit %d %s", model, filepath.Base(home), code, out)
	}
	return res.Response.NodeID
}

// TestTEL_QUORUM_SYB_06_EvidenceEndToEnd: a `meshnode directory` (--dev, reporter_min_age
// 0s so the test need not wait 3 days) and four `meshnode up` nodes. Three
// reporters first earn reputation ≥ 0.55 by serving tasks (their own
// heartbeat batches). Each then calls the target through `meshnode call`:
// the caller's router observes the answer and the node reports it to the
// directory with its proxy_token (POST /v1/telemetry). After the first and
// second reporter the target's discover entry counts them
// (latency_reporters) but keeps observed_latency_ms null (TEL-QUORUM-01);
// the third makes the quorum and discover shows the observed latency with
// basis multi_proxy_ema (TEL-QUORUM-02). Then checkAuditReports.
func TestTEL_QUORUM_SYB_06_EvidenceEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	bin := buildBinary(t)
	base := t.TempDir()
	dirHome := filepath.Join(base, "dir")
	writeConfig(t, dirHome, "[directory_server]\nreporter_min_age = \"0s\"\nprobation_min_tasks = 1\nprobation_min_age = \"0s\"\n")
	dir := start(t, "directory", bin, "--home", dirHome, "directory", "--dev", "--no-seed-log", "--listen", "127.0.0.1:0")
	dirURL := directoryURL(t, dir)
	// The target's larger capacity ranks it first in discover (the
	// reporters keep a slot each), so a reporter's call for the target's
	// model does not spend its 3 attempts on nodes without it.
	startNode := func(name, model string, slots int) (*proc, string, string) {
		home := filepath.Join(base, name)
		writeConfig(t, home, fmt.Sprintf("[node]\nmax_concurrent = %d\n", slots))
		p := start(t, name, bin, "--home", home, "up", "--dev", "--directory", dirURL,
			"--backend", modelBackend(t, model).URL, "--http", "127.0.0.1:0", "--no-mesh")
		return p, home, runtimeOf(t, p, home).NodeID
	}
	var procs []*proc
	var homes, ids []string
	for i := range 3 {
		p, h, id := startNode(fmt.Sprintf("reporter%d", i), fmt.Sprintf("m-r%d", i), 1)
		procs, homes, ids = append(procs, p), append(homes, h), append(ids, id)
	}
	eventually(t, 15*time.Second, "three reporters registered", func() bool { return len(discover(t, dirURL)) == 3 })
	for i := range 3 {
		for range 6 { // 6 successes: reputation 0.56, above the 0.55 gate
			if got := callModel(t, bin, homes[(i+1)%3], fmt.Sprintf("m-r%d", i)); got != ids[i] {
				t.Fatalf("task for m-r%d answered by %s", i, got)
			}
		}
	}
	for i, id := range ids {
		eventually(t, 30*time.Second, fmt.Sprintf("reporter %d reaches reputation 0.55", i), func() bool {
			rep, _ := nodeDetailOf(t, dirURL, id)["reputation_score"].(float64)
			return rep >= 0.55
		})
	}
	tp, _, target := startNode("target", "m-t", 16)
	procs = append(procs, tp)
	eventually(t, 15*time.Second, "target registered", func() bool { return discoverEntry(t, dirURL, target) != nil })
	for i := range 2 {
		if got := callModel(t, bin, homes[i], "m-t"); got != target {
			t.Fatalf("task for m-t answered by %s", got)
		}
		eventually(t, 15*time.Second, fmt.Sprintf("reporter %d counted", i), func() bool {
			n := discoverEntry(t, dirURL, target)
			return n != nil && n["latency_reporters"] == float64(i+1)
		})
	}
	if n := discoverEntry(t, dirURL, target); n["observed_latency_ms"] != nil || n["latency_estimate_basis"] != "none" {
		t.Fatalf("TEL-QUORUM-01: two reporters moved the observed latency: %v", n)
	}
	if got := callModel(t, bin, homes[2], "m-t"); got != target {
		t.Fatalf("task for m-t answered by %s", got)
	}
	var n map[string]any
	eventually(t, 15*time.Second, "TEL-QUORUM-02: the third reporter makes the quorum", func() bool {
		n = discoverEntry(t, dirURL, target)
		return n != nil && n["observed_latency_ms"] != nil
	})
	if n["latency_reporters"] != 3.0 || n["latency_estimate_basis"] != "multi_proxy_ema" || n["latency_estimate_ms"] == nil {
		t.Fatalf("discover after quorum: %v", n)
	}
	checkAuditReports(t, bin, dirURL, homes, target)
	for i := len(procs) - 1; i >= 0; i-- {
		if code := procs[i].stop(syscall.SIGTERM, 15*time.Second); code != 0 {
			t.Errorf("%s exited %d\n%s", procs[i].name, code, procs[i].stderr())
		}
	}
	if code := dir.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Errorf("directory exited %d\n%s", code, dir.stderr())
	}
}

// fakeDivergentNode registers, as a real HTTP server would, a node that
// declares model m-fake at REGISTER but whose /iicp/health lists none, and
// keeps it live with heartbeats until the test ends. It returns its node_id.
func fakeDivergentNode(t *testing.T, dirURL string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(wire.Health{Status: "ok", Load: 0, Available: true, MaxConcurrent: 4,
			Models: []string{}, Intents: []string{wire.IntentChat}})
	}))
	t.Cleanup(srv.Close)
	body, _ := json.Marshal(map[string]any{"endpoint": srv.URL, "region": "eu-central",
		"capabilities": []map[string]any{{"intent": wire.IntentChat, "models": []string{"m-fake"}, "max_tokens": 1024}},
		"limits":       map[string]any{"max_concurrent": 4, "tokens_per_min": 1000}})
	resp, err := plainClient.Post(dirURL+"/v1/register", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var ack wire.RegisterAck
	err = json.NewDecoder(resp.Body).Decode(&ack)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("fake node register: %d %v", resp.StatusCode, err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				hb, _ := json.Marshal(map[string]any{"node_id": ack.NodeID})
				req, _ := http.NewRequest(http.MethodPost, dirURL+"/v1/heartbeat", bytes.NewReader(hb))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+ack.NodeToken)
				if r, err := plainClient.Do(req); err == nil {
					r.Body.Close()
				}
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return ack.NodeID
}

// auditJSON runs `meshnode audit --json` from home.
func auditJSON(t *testing.T, bin, home string) map[string]map[string]any {
	t.Helper()
	out, code := run(t, bin, 60*time.Second, "--home", home, "audit", "--json")
	var lines []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &lines) != nil {
		t.Fatalf("meshnode audit from %s: exit %d %s", filepath.Base(home), code, out)
	}
	by := map[string]map[string]any{}
	for _, l := range lines {
		by[l["node_id"].(string)] = l
	}
	return by
}

// checkAuditReports: a node registered with a model its /iicp/health
// omits is found by `meshnode audit` on each reporter (the consistent
// target is not reported). The first two reports become integrity evidence
// in discover, the third reporter is acknowledged but suppressed by the
// per-target cap (SYB-06), a repeated audit is refused (429 rate_limited),
// and the reported node's outcome-v2 reputation stays 0.5 (REP-08).
func checkAuditReports(t *testing.T, bin, dirURL string, homes []string, consistent string) {
	fake := fakeDivergentNode(t, dirURL)
	eventually(t, 15*time.Second, "fake node listed", func() bool { return discoverEntry(t, dirURL, fake) != nil })
	want := []string{"accepted", "accepted", "target_cap_reached"}
	for i, h := range homes {
		by := auditJSON(t, bin, h)
		if l := by[consistent]; l == nil || l["reachable"] != true || l["missing_models"] != nil || l["report"] != nil {
			t.Fatalf("consistent node audited as %v", l)
		}
		l := by[fake]
		rep, _ := l["report"].(map[string]any)
		got := "accepted"
		if rep == nil || rep["integrity_evidence_accepted"] != true {
			got, _ = rep["suppressed_reason"].(string)
		}
		if got != want[i] || fmt.Sprint(l["missing_models"]) != "[m-fake]" {
			t.Fatalf("reporter %d on the divergent node: %v, want %s", i, l, want[i])
		}
	}
	if l := auditJSON(t, bin, homes[0])[fake]; !strings.Contains(fmt.Sprint(l["error"]), "rate_limited") {
		t.Fatalf("repeated report within 24 h: %v", l)
	}
	n := discoverEntry(t, dirURL, fake)
	ev, _ := n["integrity_evidence"].(map[string]any)
	if ev == nil || ev["declaration_divergence_24h"] != 2.0 || n["reputation_score"] != 0.5 {
		t.Fatalf("discover of the reported node: %v", n)
	}
}
