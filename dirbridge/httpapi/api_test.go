package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/meshnode/meshnode/dirbridge/httpapi"
	"github.com/meshnode/meshnode/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNODE_TASK_01_04_SuccessOverTLS(t *testing.T) {
	h := startNode(t, harnessConfig{maxConc: 2})
	call := taskBody("hello")
	call["trace"] = map[string]any{"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}
	r := h.postTask(t, call, nil)
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	m := r.json(t)
	// NODE-TASK-02/03/04.
	if m["task_id"] != call["task_id"] || m["status"] != "success" || m["error"] != nil {
		t.Fatalf("response %s", r.body)
	}
	metrics, _ := m["metrics"].(map[string]any)
	if lat, ok := metrics["latency_ms"].(float64); !ok || lat < 0 || metrics["tokens_used"] != float64(7) {
		t.Fatalf("metrics %v", metrics)
	}
	if m["model_used"] != "test-model" || m["generated_by_ai"] != true {
		t.Fatalf("model_used/generated_by_ai: %s", r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	// TRACE-02: the CALL's trace_id is echoed.
	if got := r.header.Get("X-IICP-Trace-Id"); got != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("X-IICP-Trace-Id %q", got)
	}
	if r.header.Get("X-Request-Id") == "" {
		t.Fatal("no X-Request-Id")
	}
}

func TestNODE_TASK_05_SEC_AUTH_01_02_Unauthorized(t *testing.T) {
	h := startNode(t, harnessConfig{maxConc: 2})
	noAuth := taskBody("x")
	delete(noAuth, "auth")
	wrong := taskBody("x")
	wrong["auth"] = map[string]any{"node_token": "wrong-token-wrong-token-wrong-token-wrong"}
	bearer := taskBody("x")
	delete(bearer, "auth")
	cases := []struct {
		name   string
		call   map[string]any
		hdr    map[string]string
		status int
	}{
		// SEC-AUTH-01 / SEC-RN-02: no credential at all.
		{"missing", noAuth, nil, 401},
		// SEC-AUTH-02: wrong token.
		{"wrong", wrong, nil, 401},
		// iicp-core.md §3.1: Authorization: Bearer <node_token> is accepted.
		{"bearer header", bearer, map[string]string{"Authorization": "Bearer " + testToken}, 200},
		{"wrong bearer", taskBodyNoAuth(), map[string]string{"Authorization": "Bearer nope"}, 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := h.postTask(t, tc.call, tc.hdr)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.status == 401 {
				if code := r.errCode(t); code != "unauthorized" {
					t.Fatalf("error.code %q", code)
				}
				if m := r.json(t); m["code"] != "unauthorized" || m["status"] != "error" || m["result"] != nil {
					t.Fatalf("RESPONSE shape %s", r.body)
				}
			}
		})
	}
}

func taskBodyNoAuth() map[string]any {
	c := taskBody("x")
	delete(c, "auth")
	return c
}

func TestNODE_TASK_06_DuplicateTaskID(t *testing.T) {
	h := startNode(t, harnessConfig{maxConc: 2})
	call := taskBody("x")
	if r := h.postTask(t, call, nil); r.status != 200 {
		t.Fatalf("first: %d %s", r.status, r.body)
	}
	r := h.postTask(t, call, nil)
	if r.status != http.StatusConflict || r.errCode(t) != "conflict" {
		t.Fatalf("duplicate: %d %s", r.status, r.body)
	}
	if h.llm.calls.Load() != 1 {
		t.Fatalf("backend ran %d times", h.llm.calls.Load())
	}
}

func TestNODE_TASK_07_08_SEC_LEAK_BackendError(t *testing.T) {
	h := startNode(t, harnessConfig{maxConc: 2})
	h.llm.fail.Store(true)
	r := h.postTask(t, taskBody("x"), nil)
	if r.status != http.StatusBadGateway || r.errCode(t) != "backend_error" {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	assertNoLeak(t, r.body)
}

// assertNoLeak: SEC-LEAK-01 (no stack traces) and SEC-LEAK-02 / NODE-TASK-08
// (no internal file paths) on a response body.
func assertNoLeak(t testing.TB, body []byte) {
	t.Helper()
	for _, bad := range []string{"Traceback", "goroutine ", "panic", ".go:", "at line", "/home/", "/Users/", "/var/", "/tmp/", `C:\\`} {
		if strings.Contains(string(body), bad) {
			t.Fatalf("body leaks %q: %s", bad, body)
		}
	}
}

func TestQOS_ADMIT_01_HTTP429WithRetryAfter(t *testing.T) {
	h := startNode(t, harnessConfig{maxConc: 1})
	h.llm.hold()
	first := taskBody("first")
	first["constraints"] = map[string]any{"timeout_ms": 5000, "qos": "realtime"}
	done := make(chan reply, 1)
	go func() { done <- h.postTask(t, first, nil) }()
	waitFor(t, "first task at the backend", func() bool { return h.llm.inFlight.Load() == 1 })

	second := taskBody("second")
	second["constraints"] = map[string]any{"timeout_ms": 5000, "qos": "realtime"}
	r := h.postTask(t, second, nil)
	if r.status != http.StatusTooManyRequests || r.errCode(t) != "capacity_exceeded" {
		t.Fatalf("second: %d %s", r.status, r.body)
	}
	e := r.json(t)["error"].(map[string]any)
	if e["qos_class"] != "realtime" || e["retry_after_ms"] == nil {
		t.Fatalf("error %v lacks qos_class/retry_after_ms", e)
	}
	if r.header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After header")
	}
	h.llm.release()
	if r := <-done; r.status != 200 {
		t.Fatalf("first: %d %s", r.status, r.body)
	}
}

func TestTASK_4_TimeoutIs504(t *testing.T) {
	h := startNode(t, harnessConfig{maxConc: 1})
	h.llm.hold()
	call := taskBody("slow")
	call["constraints"] = map[string]any{"timeout_ms": 150}
	r := h.postTask(t, call, nil)
	if r.status != http.StatusGatewayTimeout || r.errCode(t) != "task_timeout" || r.json(t)["status"] != "timeout" {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
}

func TestPROTO_URN_HTTP(t *testing.T) {
	h := startNode(t, harnessConfig{maxConc: 1})
	for _, tc := range []struct{ intent, code string }{
		{"iicp:intent:llm:chat:v1", "validation_error"},         // PROTO-URN-01
		{"urn:iicp:intent:llm:chat", "validation_error"},        // PROTO-URN-02
		{"urn:iicp:intent:x.acme:unknown:v1", "unknown_intent"}, // PROTO-URN-03
	} {
		call := taskBody("x")
		call["intent"] = tc.intent
		r := h.postTask(t, call, nil)
		if r.status != http.StatusUnprocessableEntity || r.errCode(t) != tc.code {
			t.Errorf("%s: %d %s", tc.intent, r.status, r.body)
		}
	}
}

func TestNODE_HEALTH_01_03(t *testing.T) {
	h := startNode(t, harnessConfig{maxConc: 3})
	r := h.do(t, http.MethodGet, "/iicp/health", nil, nil)
	if r.status != 200 || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("health %d %q", r.status, r.header.Get("Content-Type"))
	}
	var hl wire.Health
	if err := json.Unmarshal(r.body, &hl); err != nil {
		t.Fatal(err)
	}
	m := r.json(t)
	_, loadNum := m["load"].(float64)
	_, jobsNum := m["active_jobs"].(float64)
	if hl.Status != "ok" || !loadNum || !jobsNum || hl.MaxConcurrent != 3 || len(hl.Intents) != 1 || len(hl.Models) != 1 {
		t.Fatalf("health %s", r.body)
	}
	// NODE-HEALTH-03: application/json on every response, errors included.
	for _, p := range []struct{ method, path string }{
		{"GET", "/healthz"}, {"GET", "/nope"}, {"DELETE", "/v1/task"}, {"GET", "/v1/task"},
	} {
		r := h.do(t, p.method, p.path, nil, nil)
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: Content-Type %q", p.method, p.path, ct)
		}
	}
}

func TestNotFoundAndMethodEnvelopes(t *testing.T) {
	h := startNode(t, harnessConfig{maxConc: 1})
	r := h.do(t, http.MethodGet, "/v1/nothing", nil, nil)
	if r.status != 404 || r.errCode(t) != "not_found" {
		t.Fatalf("404: %d %s", r.status, r.body)
	}
	r = h.do(t, http.MethodPut, "/iicp/health", nil, nil)
	if r.status != 405 || r.errCode(t) != "method_not_allowed" || !strings.Contains(r.header.Get("Allow"), "GET") {
		t.Fatalf("405: %d %s allow=%q", r.status, r.body, r.header.Get("Allow"))
	}
	r = h.do(t, http.MethodPost, "/v1/task", []byte(`{"task_id":`), nil)
	if r.status != 422 || r.errCode(t) != "validation_error" {
		t.Fatalf("malformed: %d %s", r.status, r.body)
	}
	r = h.do(t, http.MethodPost, "/v1/task", []byte(`x`), map[string]string{"Content-Type": "text/plain"})
	if r.status != 415 || r.errCode(t) != "unsupported_media_type" {
		t.Fatalf("415: %d %s", r.status, r.body)
	}
	// POST /v1/task skips the mux (routes): its neighbours still get the mux's answers.
	r = h.do(t, http.MethodGet, "/v1/task", nil, nil)
	if r.status != 405 || r.errCode(t) != "method_not_allowed" || !strings.Contains(r.header.Get("Allow"), "POST") {
		t.Fatalf("GET /v1/task: %d %s allow=%q", r.status, r.body, r.header.Get("Allow"))
	}
	r = h.do(t, http.MethodPost, "/v1/task/", []byte(`{}`), nil)
	if r.status != 404 || r.errCode(t) != "not_found" {
		t.Fatalf("POST /v1/task/: %d %s", r.status, r.body)
	}
}

func TestBodyCap413(t *testing.T) {
	h := startNode(t, harnessConfig{maxConc: 1, apiOpts: []httpapi.Option{httpapi.WithMaxBody(64 << 10)}})
	call := taskBody(strings.Repeat("a", 100<<10))
	r := h.postTask(t, call, nil)
	if r.status != http.StatusRequestEntityTooLarge || r.errCode(t) != "payload_too_large" {
		t.Fatalf("status %d: %.200s", r.status, r.body)
	}
}

func TestMETRICS_01_03_04(t *testing.T) {
	h := startNode(t, harnessConfig{maxConc: 1})
	h.postTask(t, taskBody("x"), nil)
	r := h.do(t, http.MethodGet, "/metrics", nil, nil)
	if r.status != 200 || !strings.Contains(r.header.Get("Content-Type"), "text/plain") {
		t.Fatalf("metrics %d %q", r.status, r.header.Get("Content-Type"))
	}
	for _, name := range []string{"iicp_tasks_total", "iicp_task_latency_ms", "iicp_tokens_used_total",
		`iicp_task_latency_ms_bucket{intent="urn:iicp:intent:llm:chat:v1",le="5000"}`, "meshnode_http_requests_total"} {
		if !strings.Contains(string(r.body), name) {
			t.Errorf("metrics lack %s", name)
		}
	}
}

func TestTRACE_01_04_Traceparent(t *testing.T) {
	h := startNode(t, harnessConfig{maxConc: 1})
	const tid = "0af7651916cd43dd8448eb211c80319c"
	r := h.postTask(t, taskBody("x"), map[string]string{"traceparent": "00-" + tid + "-b7ad6b7169203331-01"})
	if got := r.header.Get("X-IICP-Trace-Id"); got != tid {
		t.Fatalf("trace id %q from traceparent", got)
	}
	// TRACE-04: a malformed traceparent is ignored, a fresh ID is used.
	r = h.postTask(t, taskBody("x"), map[string]string{"traceparent": "00-XYZ-b7ad6b7169203331-01"})
	if got := r.header.Get("X-IICP-Trace-Id"); len(got) != 32 || got == tid {
		t.Fatalf("trace id %q for a bad traceparent", got)
	}
}

func TestCORSPreflight(t *testing.T) {
	h := startNode(t, harnessConfig{maxConc: 1})
	r := h.do(t, http.MethodOptions, "/v1/task", nil, map[string]string{
		"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
		"Access-Control-Request-Headers": "content-type, x-iicp-consumer-token"})
	if r.status != http.StatusNoContent || r.header.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(r.header.Get("Access-Control-Allow-Headers"), "X-IICP-Consumer-Token") ||
		!strings.Contains(r.header.Get("Access-Control-Allow-Methods"), "POST") {
		t.Fatalf("preflight %d %v", r.status, r.header)
	}
	r = h.postTask(t, taskBody("x"), map[string]string{"Origin": "https://app.example"})
	if r.header.Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "Retry-After") {
		t.Fatalf("CORS headers on POST: %v", r.header)
	}
}
