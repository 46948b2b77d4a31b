package interop

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/meshnode/meshnode/wire"
)

const answerTaskID = "7f1c2a9e-0000-4000-8000-0000000000aa"

// dialectCase is one deployed node answer and the RESPONSE it must become.
type dialectCase struct {
	name       string
	status     int
	body       string
	wantStatus string
	wantCode   wire.Code
	wantHTTP   int
	check      func(t *testing.T, r *wire.Response)
}

// deployedDialects: what deployed SDK nodes and relays answer on POST
// /v1/task, each with the RESPONSE the spec node would have sent.
var deployedDialects = []dialectCase{
	// Python node success: "completed", the handler's dict spread at top level.
	{name: "python completed", status: 200,
		body:       `{"task_id":"` + answerTaskID + `","status":"completed","result":{"choices":[{"message":{"role":"assistant","content":"hi"}}]},"usage":{"total_tokens":7}}`,
		wantStatus: wire.StatusSuccess,
		check: func(t *testing.T, r *wire.Response) {
			if r.Metrics.TokensUsed != 7 || !strings.Contains(string(r.Result), `"content":"hi"`) {
				t.Errorf("tokens %d result %s", r.Metrics.TokensUsed, r.Result)
			}
		}},
	// Spec success passes through with its metrics.
	{name: "spec success", status: 200,
		body:       `{"task_id":"` + answerTaskID + `","status":"success","result":{"text":"x"},"metrics":{"latency_ms":5,"tokens_used":3},"error":null}`,
		wantStatus: wire.StatusSuccess,
		check: func(t *testing.T, r *wire.Response) {
			if r.Metrics.LatencyMs != 5 || r.Metrics.TokensUsed != 3 {
				t.Errorf("metrics %+v", r.Metrics)
			}
		}},
	// Python node full: IICP-E021 at 429, qos_class with an underscore.
	{name: "python capacity", status: 429,
		body:       `{"error":{"code":"IICP-E021","message":"capacity_exceeded","qos_class":"best_effort","retry_after_ms":2000}}`,
		wantStatus: wire.StatusError, wantCode: wire.CodeCapacityExceeded, wantHTTP: 429,
		check: func(t *testing.T, r *wire.Response) {
			if r.Error.QoSClass != wire.QoSBestEffort || r.Error.RetryAfterMs != 2000 {
				t.Errorf("qos_class %q retry %d", r.Error.QoSClass, r.Error.RetryAfterMs)
			}
		}},
	// Python nonce replay and duplicate task: numbered codes at 409 keep their code.
	{name: "python replay", status: 409, body: `{"error":{"code":"IICP-E011","message":"replay_detected"}}`,
		wantStatus: wire.StatusError, wantCode: "IICP-E011", wantHTTP: 409},
	// Spec error RESPONSE with the top-level code mirror.
	{name: "spec timeout", status: 504,
		body:       `{"task_id":"` + answerTaskID + `","status":"timeout","result":null,"metrics":{"latency_ms":100,"tokens_used":0},"error":{"code":"task_timeout","message":"deadline"},"code":"task_timeout"}`,
		wantStatus: wire.StatusTimeout, wantCode: wire.CodeTaskTimeout, wantHTTP: 504},
	// Flat {"code","message"} (what the Python client's from_http reads).
	{name: "flat code", status: 401, body: `{"code":"unauthorized","message":"bad token"}`,
		wantStatus: wire.StatusError, wantCode: wire.CodeUnauthorized, wantHTTP: 401},
	// {"error":"text"}: the text is dropped, the status decides.
	{name: "error string", status: 503, body: `{"error":"node shutting down /srv/app.py"}`,
		wantStatus: wire.StatusError, wantCode: wire.CodeUnavailable, wantHTTP: 503},
	// BaseHTTPRequestHandler.send_error: an HTML page, status only.
	{name: "html 500", status: 500, body: `<html><body><h1>Error response</h1><p>Message: Traceback /home/op/x.py</p></body></html>`,
		wantStatus: wire.StatusError, wantCode: wire.CodeInternal, wantHTTP: 500},
	{name: "html 504", status: 504, body: `<html>timeout</html>`,
		wantStatus: wire.StatusTimeout, wantCode: wire.CodeTaskTimeout, wantHTTP: 504},
	// 200 with status error and an error object (some relays).
	{name: "200 status error", status: 200, body: `{"task_id":"` + answerTaskID + `","status":"error","error":{"code":"backend_error","message":"x"}}`,
		wantStatus: wire.StatusError, wantCode: wire.CodeBackendError, wantHTTP: 502},
}

// TestDecodeTaskAnswer_DeployedDialects: every answer shape a deployed SDK
// node sends to POST /v1/task becomes the RESPONSE a spec node would send.
// Bodies are copied from iicp-client-python src/iicp_client/node.py `_task`
// (success, E021, E011, E010, send_error) and the spec envelope.
func TestDecodeTaskAnswer_DeployedDialects(t *testing.T) {
	for _, tc := range deployedDialects {
		t.Run(tc.name, func(t *testing.T) { checkDialect(t, tc) })
	}
}

func checkDialect(t *testing.T, tc dialectCase) {
	t.Helper()
	r, err := DecodeTaskAnswer(tc.status, []byte(tc.body), answerTaskID)
	if err != nil {
		t.Fatalf("error: %v", err)
	}
	if r.Status != tc.wantStatus || r.TaskID != answerTaskID {
		t.Fatalf("status %q task %q", r.Status, r.TaskID)
	}
	if tc.wantCode != "" {
		if r.Error == nil || r.Error.Code != tc.wantCode || r.Code != tc.wantCode || r.Error.Status() != tc.wantHTTP {
			t.Fatalf("error %+v code %q", r.Error, r.Code)
		}
		if r.Result != nil {
			t.Errorf("failed answer keeps a result: %s", r.Result)
		}
		if strings.Contains(r.Error.Message, "/") && tc.name != "spec timeout" {
			t.Errorf("node text leaked into the message: %q", r.Error.Message)
		}
	} else if r.Error != nil {
		t.Fatalf("unexpected error %+v", r.Error)
	}
	if tc.check != nil {
		tc.check(t, r)
	}
}

// TestDecodeTaskAnswer_NoAnswer: a 2xx body that is not an IICP answer is
// an error that never quotes the body.
func TestDecodeTaskAnswer_NoAnswer(t *testing.T) {
	for _, body := range []string{`ok secret-prompt`, `{}`, `[1,2]`, ``} {
		_, err := DecodeTaskAnswer(200, []byte(body), answerTaskID)
		if !errors.Is(err, ErrNoAnswer) {
			t.Errorf("%q: err %v", body, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("body leaked: %v", err)
		}
	}
	if _, err := DecodeTaskAnswer(200, make([]byte, maxAnswer+1), answerTaskID); err == nil {
		t.Error("oversize answer accepted")
	}
}

func TestTicketIssuerAndRegistryPrefix(t *testing.T) {
	for in, want := range map[string]string{
		"https://iicp.network/api":   "https://iicp.network",
		"https://iicp.network/api/":  "https://iicp.network",
		"http://127.0.0.1:8080/api":  "http://127.0.0.1:8080",
		"https://dir.example:8443":   "https://dir.example:8443",
		"https://dir.example/api/v2": "https://dir.example/api/v2",
	} {
		if got := TicketIssuer(in); got != want {
			t.Errorf("TicketIssuer(%q) = %q, want %q", in, got, want)
		}
	}
	if got := RegistryPrefix("6f1c2f0e-3b7a-4c1e-9d2a-0a1b2c3d4e5f"); got != "6f1c2f0e" {
		t.Errorf("uuid prefix %q", got)
	}
	if got := RegistryPrefix("my-node-001"); got != "my-node-001" {
		t.Errorf("non-uuid id %q", got)
	}
}

// TestCompatCallJSON: qos is mirrored as qos_class and the CALL still
// decodes (and validates) on a spec node.
func TestCompatCallJSON(t *testing.T) {
	call := &wire.Call{TaskID: answerTaskID, Intent: wire.IntentChat, Payload: json.RawMessage(`{"messages":[]}`),
		Constraints: wire.Constraints{TimeoutMs: 5000, QoS: wire.QoSRealtime}}
	b, err := CompatCallJSON(call)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Constraints map[string]any `json:"constraints"`
	}
	if err := json.Unmarshal(b, &m); err != nil || m.Constraints["qos_class"] != wire.QoSRealtime || m.Constraints["qos"] != wire.QoSRealtime {
		t.Fatalf("constraints %v (%v)", m.Constraints, err)
	}
	back, werr := wire.DecodeCallJSON(b)
	if werr != nil || back.Constraints.QoS != wire.QoSRealtime {
		t.Fatalf("spec node decode: %v", werr)
	}
	call.Constraints.QoS = ""
	if b, _ = CompatCallJSON(call); strings.Contains(string(b), "qos_class") {
		t.Errorf("qos_class without qos: %s", b)
	}
}
