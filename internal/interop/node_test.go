package interop_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/meshnode/meshnode/internal/interop"
	"github.com/meshnode/meshnode/internal/spectest"
	"github.com/meshnode/meshnode/wire"
)

// pythonTaskBody is the Python client's POST /v1/task body with the
// plaintext escape hatch (src/iicp_client/client.py submit_async with
// IICP_CX_ALLOW_PLAINTEXT=1): constraints {timeout_ms, qos}, auth.node_token,
// source_node_id.
func pythonTaskBody(t testing.TB, taskID, text string) []byte {
	return mustJSON(t, map[string]any{
		"task_id": taskID, "intent": wire.IntentChat,
		"constraints":    map[string]any{"timeout_ms": 30000, "qos": "interactive"},
		"auth":           map[string]any{"node_token": testToken},
		"source_node_id": "9d4c2f0e-3b7a-4c1e-9d2a-0a1b2c3d4e5f",
		"payload":        json.RawMessage(chatPayload(text)),
	})
}

// rustTaskBody is serde's rendering of the Rust client's TaskRequest
// (src/types.rs, src/client.rs chat): constraints with max_tokens, model
// and qos, route_constraints, no auth member (the node token travels as
// Authorization: Bearer, src/http.rs).
func rustTaskBody(t testing.TB, taskID, model, text string) []byte {
	return mustJSON(t, map[string]any{
		"task_id": taskID, "intent": wire.IntentChat,
		"payload":           json.RawMessage(chatPayload(text)),
		"constraints":       map[string]any{"timeout_ms": 30000, "max_tokens": 64, "model": model, "qos": "interactive"},
		"route_constraints": map[string]any{"qos": "interactive", "limit": 10},
	})
}

// rustTaskResponse is what the Rust client deserialises a 2xx into
// (src/types.rs TaskResponse: task_id and status are required).
type rustTaskResponse struct {
	TaskID  string           `json:"task_id"`
	Status  string           `json:"status"`
	Result  *json.RawMessage `json:"result"`
	Metrics *struct {
		LatencyMs  *float64 `json:"latency_ms"`
		TokensUsed *uint32  `json:"tokens_used"`
	} `json:"metrics"`
}

// TestNODE_TASK_01_SDKRequestsAndChatShape: the Python and Rust client
// bodies, as sent, succeed on a real node with an OpenAI-compatible
// backend; the result is what SDK chat() reads (choices[0].message) and
// validates against registry/schemas/llm-chat-v1-output.json; the CALL's
// trace (from traceparent) reaches the backend as X-IICP-Trace-Id.
func TestNODE_TASK_01_SDKRequestsAndChatShape(t *testing.T) {
	llm := newFakeOpenAI(t)
	h := startNode(t, nodeOpts{openAIURL: llm.URL, noCX: true})
	schema := chatOutputSchema(t)
	cases := []struct {
		name string
		body []byte
		hdr  map[string]string
	}{
		{"python", pythonTaskBody(t, "5b7f3c1e-1111-4222-8333-444455556601", "hi"), nil},
		{"rust", rustTaskBody(t, "5b7f3c1e-1111-4222-8333-444455556602", "test-model", "hi"), map[string]string{"Authorization": "Bearer " + testToken}},
	}
	for _, tc := range cases {
		st, hdr, b := h.post(t, tc.body, tc.hdr)
		if st != http.StatusOK || hdr.Get("Content-Encoding") != "" || hdr.Get("Content-Type") != "application/json" {
			t.Fatalf("%s: %d %v %s", tc.name, st, hdr, b)
		}
		var rr rustTaskResponse
		if err := json.Unmarshal(b, &rr); err != nil || rr.TaskID == "" || rr.Status != wire.StatusSuccess || rr.Result == nil ||
			rr.Metrics == nil || rr.Metrics.LatencyMs == nil || rr.Metrics.TokensUsed == nil || *rr.Metrics.TokensUsed != 7 {
			t.Fatalf("%s: Rust TaskResponse view of %s (%v)", tc.name, b, err)
		}
		if err := validateAgainst(t, schema, *rr.Result); err != nil {
			t.Fatalf("%s: result violates llm-chat-v1-output.json: %v\n%s", tc.name, err, *rr.Result)
		}
		// Python chat_async: result["choices"][i]["message"]["content"].
		var py struct {
			Choices []struct {
				Message struct{ Role, Content string }
			}
		}
		if json.Unmarshal(*rr.Result, &py) != nil || len(py.Choices) != 1 || py.Choices[0].Message.Content != "ok" || py.Choices[0].Message.Role != "assistant" {
			t.Fatalf("%s: choices %s", tc.name, *rr.Result)
		}
		if got := llm.lastTrace(); got != "4bf92f3577b34da6a3ce929d0e0e4736" {
			t.Fatalf("%s: backend saw trace %q", tc.name, got)
		}
	}
}

// TestNODE_TASK_EchoChatShape: the built-in echo backend answers chat in the
// same registry shape, so SDK consumers of a demo node parse it too.
func TestNODE_TASK_EchoChatShape(t *testing.T) {
	h := startNode(t, nodeOpts{noCX: true})
	st, _, b := h.post(t, pythonTaskBody(t, "5b7f3c1e-1111-4222-8333-444455556603", "say this"), nil)
	var rr rustTaskResponse
	if st != 200 || json.Unmarshal(b, &rr) != nil || rr.Result == nil {
		t.Fatalf("%d %s", st, b)
	}
	if err := validateAgainst(t, chatOutputSchema(t), *rr.Result); err != nil {
		t.Fatalf("echo result violates llm-chat-v1-output.json: %v\n%s", err, *rr.Result)
	}
}

// TestNODE_TIMEOUT_504: a task past its deadline is HTTP 504 with status
// "timeout" and task_timeout in error.code and at top level.
func TestNODE_TIMEOUT_504(t *testing.T) {
	h := startNode(t, nodeOpts{noCX: true, echoDelay: 5 * time.Second})
	body := bytes.Replace(pythonTaskBody(t, "6b7f3c1e-1111-4222-8333-444455556601", "slow"), []byte(`"timeout_ms":30000`), []byte(`"timeout_ms":200`), 1)
	start := time.Now()
	st, _, b := h.post(t, body, nil)
	if st != http.StatusGatewayTimeout || time.Since(start) > 4*time.Second {
		t.Fatalf("status %d after %v: %s", st, time.Since(start), b)
	}
	if nested, top := envelopeCode(t, b); nested != string(wire.CodeTaskTimeout) || top != nested {
		t.Fatalf("codes %q/%q", nested, top)
	}
	r, err := interop.DecodeTaskAnswer(st, b, "")
	if err != nil || r.Status != wire.StatusTimeout {
		t.Fatalf("answer %+v %v", r, err)
	}
}

// TestNODE_ERR_EnvelopeBothPlaces: every failure body carries the spec
// envelope {"error":{"code","message"}} and the same code at top level,
// which is where the Python client's from_http looks (src/iicp_client/errors.py);
// Rust reads error.code (src/http.rs). Covers NODE-TASK-05 (401), a
// validation error, an unknown route, a wrong method and a malformed body.
func TestNODE_ERR_EnvelopeBothPlaces(t *testing.T) {
	h := startNode(t, nodeOpts{noCX: true})
	noAuth := rustTaskBody(t, "7b7f3c1e-1111-4222-8333-444455556601", "meshnode-echo", "x")
	badIntent := bytes.Replace(pythonTaskBody(t, "7b7f3c1e-1111-4222-8333-444455556602", "x"), []byte("llm:chat:v1"), []byte("llm:chat"), 1)
	cases := []struct {
		name   string
		method string
		path   string
		body   []byte
		status int
		code   wire.Code
	}{
		{"NODE-TASK-05 no token", http.MethodPost, "/v1/task", noAuth, 401, wire.CodeUnauthorized},
		{"invalid intent", http.MethodPost, "/v1/task", badIntent, 422, wire.CodeValidationError},
		{"malformed JSON", http.MethodPost, "/v1/task", []byte(`{"task_id":`), 422, wire.CodeValidationError},
		{"unknown route", http.MethodGet, "/v1/nothing", nil, 404, wire.CodeNotFound},
		{"wrong method", http.MethodGet, "/v1/task", nil, 405, wire.CodeMethodNotAllowed},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest(tc.method, h.url+tc.path, bytes.NewReader(tc.body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := h.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d: %s", tc.name, resp.StatusCode, tc.status, buf.Bytes())
			continue
		}
		nested, top := envelopeCode(t, buf.Bytes())
		if nested != string(tc.code) || top != nested {
			t.Errorf("%s: codes %q/%q, want %s in both", tc.name, nested, top, tc.code)
		}
	}
}

func chatOutputSchema(t testing.TB) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(spectest.Read(t, "registry", "schemas", "llm-chat-v1-output.json")))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("llm-chat-v1-output.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("llm-chat-v1-output.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func validateAgainst(t testing.TB, s *jsonschema.Schema, raw []byte) error {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("result is not JSON: %v", err)
	}
	return s.Validate(v)
}
