package httpapi_test

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
	h := startNode(t, harnessConfig{maxConc: 1, routes: func(openai backend.Backend) []backend.Route {
		return []backend.Route{
			{Intent: wire.IntentChat, Mode: backend.ModeChat, Backend: openai, Models: []string{"test-model"}},
			{Intent: wire.IntentCompletion, Mode: backend.ModeCompletion, Backend: panicBackend{}, Models: []string{"test-model"}},
		}
	}})
	// The node's own token carries the canary, so successful CALLs carry it too.
	r := &canaryRun{t: t, h: h, canary: canary, nodeToken: canary + "-node-token-0123456789abcdef0123456789",
		hdr: map[string]string{"X-IICP-Consumer-Token": canary + ".deadbeef"}}
	h.eng.SetNodeToken(r.nodeToken)
	r.refusals()
	r.failures()
	r.capacityAndTimeout()
	r.replies = append(r.replies, h.do(t, http.MethodGet, "/metrics", nil, nil), h.do(t, http.MethodGet, "/iicp/health", nil, nil))

	logs := h.logs.String()
	for _, must := range []string{"task failed", "backend panicked", "backend failed", "task refused"} {
		if !strings.Contains(logs, must) {
			t.Fatalf("log lacks %q: the canary check would prove nothing\n%s", must, logs)
		}
	}
	if strings.Contains(logs, canary) {
		t.Fatalf("canary in logs:\n%s", logs)
	}
	for i, rep := range r.replies {
		checkNoCanaryReply(t, i, rep, canary)
	}
}

// canaryRun threads one canary through every task path and keeps the
// replies for the final check.
type canaryRun struct {
	t         *testing.T
	h         *harness
	canary    string
	nodeToken string
	hdr       map[string]string
	replies   []reply
}

// call is a CALL whose payload and node token carry the canary.
func (r *canaryRun) call(text string, mutate func(map[string]any)) map[string]any {
	c := taskBody(r.canary + " " + text)
	c["auth"] = map[string]any{"node_token": r.nodeToken}
	if mutate != nil {
		mutate(c)
	}
	return c
}

func (r *canaryRun) expect(rep reply, status int, what string) {
	r.t.Helper()
	if rep.status != status {
		r.t.Fatalf("%s: status %d, want %d: %s", what, rep.status, status, rep.body)
	}
	r.replies = append(r.replies, rep)
}

// refusals: success, duplicate, unauthorized, malformed and invalid CALLs.
func (r *canaryRun) refusals() {
	t, h, canary := r.t, r.h, r.canary
	first := r.call("success", nil)
	r.expect(h.postTask(t, first, r.hdr), 200, "success")
	r.expect(h.postTask(t, first, r.hdr), 409, "duplicate")
	// wrong token and a bogus consumer token, both with the canary
	r.expect(h.postTask(t, r.call("unauth", func(c map[string]any) {
		c["auth"] = map[string]any{"node_token": canary + "-wrong"}
	}), r.hdr), 401, "unauthorized")
	// truncated JSON full of canary
	r.expect(h.do(t, http.MethodPost, "/v1/task", []byte(`{"task_id":"`+canary+`","payload":{"x":"`+canary), r.hdr), 422, "malformed")
	// invalid fields carrying the canary
	r.expect(h.postTask(t, r.call("badid", func(c map[string]any) { c["task_id"] = canary }), r.hdr), 422, "bad task_id")
	r.expect(h.postTask(t, r.call("badintent", func(c map[string]any) { c["intent"] = "urn:iicp:intent:x." + canary + ":a:v1" }), r.hdr), 422, "unknown intent")
}

// failures: the upstream echoes the prompt in its error body; a backend
// panics with the payload in the panic value.
func (r *canaryRun) failures() {
	t, h := r.t, r.h
	h.llm.fail.Store(true)
	r.expect(h.postTask(t, r.call("backend error", nil), r.hdr), 502, "backend error")
	h.llm.fail.Store(false)
	r.expect(h.postTask(t, r.call("panic", func(c map[string]any) {
		c["intent"] = wire.IntentCompletion
		c["payload"] = map[string]any{"prompt": r.canary}
	}), r.hdr), 502, "panic")
}

// capacityAndTimeout: capacity exceeded, then the timeout of the task
// holding the only slot.
func (r *canaryRun) capacityAndTimeout() {
	t, h := r.t, r.h
	h.llm.hold()
	done := make(chan reply, 1)
	go func() {
		done <- h.postTask(t, r.call("timeout", func(c map[string]any) { c["constraints"] = map[string]any{"timeout_ms": 300} }), r.hdr)
	}()
	waitFor(t, "slot holder at the backend", func() bool { return h.llm.inFlight.Load() == 1 })
	r.expect(h.postTask(t, r.call("capacity", func(c map[string]any) {
		c["constraints"] = map[string]any{"timeout_ms": 5000, "qos": "batch"}
	}), r.hdr), 429, "capacity")
	r.expect(<-done, 504, "timeout")
	h.llm.release()
}

// checkNoCanaryReply: no body or header carries the canary, and every
// failure is a structured IICP error without internals.
func checkNoCanaryReply(t *testing.T, i int, r reply, canary string) {
	t.Helper()
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
