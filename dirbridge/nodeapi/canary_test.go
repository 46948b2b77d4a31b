package nodeapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/meshnode/meshnode/node/backend"
	"github.com/meshnode/meshnode/wire"
)

// SEC-LOG-01 / TASK-5: a canary string rides in the payload and in every
// credential through every path a task can take; it must appear in no log
// line (engine and bridge, debug level), no metric, no response body and no
// response header.
func TestSEC_LOG_01_TASK_5_CanaryNeverLeaks(t *testing.T) {
	canary := "cnry" + newUUID()[:8] // lowercase hex: valid inside an intent URN too
	// The node's own token carries the canary, so successful CALLs carry it too.
	nodeToken := canary + "-node-token-0123456789abcdef0123456789"
	h := startNode(t, harnessConfig{maxConc: 1, routes: func(openai backend.Backend) []backend.Route {
		return []backend.Route{
			{Intent: wire.IntentChat, Mode: backend.ModeChat, Backend: openai, Models: []string{"test-model"}},
			{Intent: wire.IntentCompletion, Mode: backend.ModeCompletion, Backend: panicBackend{}, Models: []string{"test-model"}},
		}
	}})
	h.eng.SetNodeToken(nodeToken)
	var replies []reply
	hdr := map[string]string{"X-IICP-Consumer-Token": canary + ".deadbeef"}
	call := func(text string, mutate func(map[string]any)) map[string]any {
		c := taskBody(canary + " " + text)
		c["auth"] = map[string]any{"node_token": nodeToken}
		if mutate != nil {
			mutate(c)
		}
		return c
	}
	expect := func(r reply, status int, what string) {
		t.Helper()
		if r.status != status {
			t.Fatalf("%s: status %d, want %d: %s", what, r.status, status, r.body)
		}
		replies = append(replies, r)
	}

	// success
	first := call("success", nil)
	expect(h.postTask(t, first, hdr), 200, "success")
	// duplicate
	expect(h.postTask(t, first, hdr), 409, "duplicate")
	// unauthorized: wrong token and a bogus consumer token, both with the canary
	expect(h.postTask(t, call("unauth", func(c map[string]any) {
		c["auth"] = map[string]any{"node_token": canary + "-wrong"}
	}), hdr), 401, "unauthorized")
	// malformed body: truncated JSON full of canary
	expect(h.do(t, http.MethodPost, "/v1/task", []byte(`{"task_id":"`+canary+`","payload":{"x":"`+canary), hdr), 422, "malformed")
	// invalid fields carrying the canary
	expect(h.postTask(t, call("badid", func(c map[string]any) { c["task_id"] = canary }), hdr), 422, "bad task_id")
	expect(h.postTask(t, call("badintent", func(c map[string]any) { c["intent"] = "urn:iicp:intent:x." + canary + ":a:v1" }), hdr), 422, "unknown intent")
	// backend error: the upstream echoes the prompt in its error body
	h.llm.fail.Store(true)
	expect(h.postTask(t, call("backend error", nil), hdr), 502, "backend error")
	h.llm.fail.Store(false)
	// backend panic with the payload in the panic value
	expect(h.postTask(t, call("panic", func(c map[string]any) {
		c["intent"] = wire.IntentCompletion
		c["payload"] = map[string]any{"prompt": canary}
	}), hdr), 502, "panic")
	// capacity exceeded, then timeout of the task holding the slot
	h.llm.hold()
	done := make(chan reply, 1)
	go func() {
		done <- h.postTask(t, call("timeout", func(c map[string]any) { c["constraints"] = map[string]any{"timeout_ms": 300} }), hdr)
	}()
	waitFor(t, "slot holder at the backend", func() bool { return h.llm.inFlight.Load() == 1 })
	expect(h.postTask(t, call("capacity", func(c map[string]any) {
		c["constraints"] = map[string]any{"timeout_ms": 5000, "qos": "batch"}
	}), hdr), 429, "capacity")
	expect(<-done, 504, "timeout")
	h.llm.release()

	metrics := h.do(t, http.MethodGet, "/metrics", nil, nil)
	health := h.do(t, http.MethodGet, "/iicp/health", nil, nil)
	replies = append(replies, metrics, health)

	logs := h.logs.String()
	for _, must := range []string{"task failed", "backend panicked", "backend failed", "task refused"} {
		if !strings.Contains(logs, must) {
			t.Fatalf("log lacks %q: the canary check would prove nothing\n%s", must, logs)
		}
	}
	if strings.Contains(logs, canary) {
		t.Fatalf("canary in logs:\n%s", logs)
	}
	for i, r := range replies {
		if strings.Contains(string(r.body), canary) {
			t.Fatalf("reply %d (status %d) body carries the canary: %s", i, r.status, r.body)
		}
		for k, vs := range r.header {
			if strings.Contains(strings.Join(vs, " "), canary) {
				t.Fatalf("reply %d header %s carries the canary", i, k)
			}
		}
		if r.status >= 400 {
			assertNoLeak(t, r.body)
			var env struct {
				Error *wire.Error `json:"error"`
			}
			if err := json.Unmarshal(r.body, &env); err != nil || env.Error == nil || env.Error.Code == "" {
				t.Fatalf("reply %d is not a structured error: %s", i, r.body)
			}
		}
	}
}
