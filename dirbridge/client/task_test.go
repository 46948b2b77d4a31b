package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/cx"
	"github.com/meshnode/meshnode/wire"
)

// sdkNode answers POST /v1/task with a fixed status and raw body, the way
// a deployed SDK node would, and records the raw request body.
type sdkNode struct {
	srv   *httptest.Server
	calls atomic.Int64
	last  atomic.Value // []byte
}

func newSDKNode(t *testing.T, status int, body string) *sdkNode {
	n := &sdkNode{}
	n.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		n.last.Store(b)
		n.calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(n.srv.Close)
	return n
}

func (n *sdkNode) sum(id string) wire.NodeSummary {
	return wire.NodeSummary{NodeID: id, Endpoint: n.srv.URL, Available: true, Score: 0.5}
}

// Deployed SDK nodes answer in their own dialects; each must come back as
// the RESPONSE the spec node would have sent.
func TestPostTaskReadsDeployedDialects(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   string // RESPONSE status
		code   wire.Code
	}{
		// Python/Rust SDK success: "completed" with the result at top level.
		{"completed", 200, `{"task_id":"x","status":"completed","result":{"text":"hi"},"usage":{"total_tokens":7}}`, wire.StatusSuccess, ""},
		// The spec RESPONSE.
		{"success", 200, `{"task_id":"x","status":"success","result":{"text":"hi"}}`, wire.StatusSuccess, ""},
		// Python full node: IICP-E021 at 429 is capacity_exceeded.
		{"e021", 429, `{"error":{"code":"IICP-E021","message":"capacity_exceeded","qos_class":"best_effort","retry_after_ms":2000}}`, wire.StatusError, wire.CodeCapacityExceeded},
		// Error code at the top level instead of under "error".
		{"top-level code", 502, `{"code":"backend_error","message":"upstream failed"}`, wire.StatusError, wire.CodeBackendError},
		// Error code nested in the envelope.
		{"nested code", 400, `{"error":{"code":"validation_error","message":"bad"}}`, wire.StatusError, wire.CodeValidationError},
		// A gateway timeout with an HTML page is a timeout.
		{"504 html", 504, `<html><body>Gateway Timeout</body></html>`, wire.StatusTimeout, wire.CodeTaskTimeout},
		// Python send_error HTML on 500.
		{"500 html", 500, `<html>Traceback /srv/app.py</html>`, wire.StatusError, wire.CodeInternal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newSDKNode(t, tc.status, tc.body)
			resp, st, err := PostTask(context.Background(), nil, n.sum("a"), testCall(), "", true)
			if err != nil || st.HTTPStatus != tc.status {
				t.Fatalf("err %v status %d", err, st.HTTPStatus)
			}
			if resp.Status != tc.want || (tc.code != "" && (resp.Error == nil || resp.Error.Code != tc.code)) {
				t.Fatalf("got %+v (error %+v)", resp, resp.Error)
			}
			if resp.Error != nil && strings.Contains(resp.Error.Message, "/srv/app.py") {
				t.Fatal("node body text leaked into the error message")
			}
		})
	}
}

// iicp-semantics.md §2.2: capacity_exceeded switches node at once (no
// backoff) and its qos_class is read; other transient failures back off.
func TestCallerCapacityExceededSwitchesWithoutBackoff(t *testing.T) {
	full := newSDKNode(t, 429, `{"error":{"code":"IICP-E021","message":"capacity_exceeded","qos_class":"best_effort","retry_after_ms":2000}}`)
	good := newSDKNode(t, 200, `{"task_id":"x","status":"completed","result":{"ok":1}}`)
	cl := &Caller{AllowPlaintext: true, RetryBase: 2 * time.Second, Directory: directoryWith(t, full.sum("full"), good.sum("good"))}
	start := time.Now()
	resp, info, err := cl.Call(context.Background(), testCall(), Query{})
	if err != nil || resp.Status != wire.StatusSuccess || info.NodeID != "good" {
		t.Fatalf("resp %+v info %+v err %v", resp, info, err)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("switch after capacity_exceeded took %v (backoff applied)", el)
	}
	if a := info.Tried[0]; a.Code != wire.CodeCapacityExceeded || a.QoSClass != "best-effort" || a.Status != 429 {
		t.Fatalf("first attempt %+v", a)
	}

	// A 503 is transient: the next node is tried after the §6.1 pause.
	down := newSDKNode(t, 503, `{"error":{"code":"unavailable","message":"draining"}}`)
	cl = &Caller{AllowPlaintext: true, RetryBase: 150 * time.Millisecond, Directory: directoryWith(t, down.sum("down"), good.sum("good"))}
	start = time.Now()
	if _, info, err := cl.Call(context.Background(), testCall(), Query{}); err != nil || info.NodeID != "good" {
		t.Fatalf("info %+v err %v", info, err)
	}
	if el := time.Since(start); el < 120*time.Millisecond {
		t.Fatalf("retry after 503 came after %v, want the §6.1 backoff", el)
	}
}

// The CALL carries constraints.qos and the qos_class mirror SDK nodes read.
func TestCallerSendsQoSAndQoSClass(t *testing.T) {
	n := newSDKNode(t, 200, `{"status":"completed","result":{}}`)
	call := testCall()
	call.Constraints.QoS = wire.QoSInteractive
	cl := &Caller{AllowPlaintext: true, Directory: directoryWith(t, n.sum("a"))}
	if _, _, err := cl.Call(context.Background(), call, Query{}); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Constraints map[string]any `json:"constraints"`
	}
	if err := json.Unmarshal(n.last.Load().([]byte), &got); err != nil {
		t.Fatal(err)
	}
	if got.Constraints["qos"] != wire.QoSInteractive || got.Constraints["qos_class"] != wire.QoSInteractive {
		t.Fatalf("constraints %v", got.Constraints)
	}
}

// cxNode is a node with a real IICP-CX key ring behind the provider hook.
func cxNode(t *testing.T, answer func(call wire.Call) *wire.Response) (*httptest.Server, wire.CXPublicKey, *atomic.Value) {
	t.Helper()
	ring, err := cx.OpenKeyRing(filepath.Join(t.TempDir(), cx.DefaultFileName), "node-cx")
	if err != nil {
		t.Fatal(err)
	}
	prov, err := cx.NewProvider(ring)
	if err != nil {
		t.Fatal(err)
	}
	hook := prov.Hook()
	var raw atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		raw.Store(body)
		plain, respond, werr := hook(body)
		if werr != nil {
			writeErr(w, werr.Status(), werr.Code, werr.Message)
			return
		}
		var c wire.Call
		_ = json.Unmarshal(plain, &c)
		out, _ := respond(answer(c))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
	}))
	t.Cleanup(srv.Close)
	return srv, ring.PublicKey(), &raw
}

// CX-01/CX-05 (consumer side): the payload is sealed to a keyed node, the
// sealed response is opened, and the plaintext never crosses the wire.
func TestCX_CallerEncryptsToKeyedNode(t *testing.T) {
	srv, key, raw := cxNode(t, func(c wire.Call) *wire.Response {
		return &wire.Response{TaskID: c.TaskID, Status: wire.StatusSuccess, Result: c.Payload}
	})
	n := wire.NodeSummary{NodeID: "k", Endpoint: srv.URL, Available: true, CXPublicKey: &key}
	cl := &Caller{Directory: directoryWith(t, n)}
	call := testCall()
	// Spaces never occur in base64, so the marker cannot appear by chance.
	call.Payload = json.RawMessage(`{"messages":[{"role":"user","content":"secret prompt text"}]}`)
	resp, info, err := cl.Call(context.Background(), call, Query{})
	if err != nil || resp.Status != wire.StatusSuccess || !info.Encrypted || !info.Tried[0].Encrypted {
		t.Fatalf("resp %+v info %+v err %v", resp, info, err)
	}
	if !jsonEqual(t, resp.Result, call.Payload) {
		t.Fatalf("result %s, want the echoed payload", resp.Result)
	}
	body := string(raw.Load().([]byte))
	if !strings.Contains(body, `"iicp_conf"`) || strings.Contains(body, `"payload"`) || strings.Contains(body, "secret prompt") {
		t.Fatalf("request body not sealed: %s", body)
	}
}

// §6: keyless nodes are refused by default (IICP-E064, nothing sent) and
// reached in plaintext only under the explicit AllowPlaintext override.
func TestCX_CallerRefusesKeylessNodeByDefault(t *testing.T) {
	n := newSDKNode(t, 200, `{"status":"success","result":{}}`)
	cl := &Caller{Directory: directoryWith(t, n.sum("plain"))}
	_, info, err := cl.Call(context.Background(), testCall(), Query{})
	var werr *wire.Error
	if !errors.As(err, &werr) || werr.Code != wire.CodeE064 || n.calls.Load() != 0 || info.SkippedKeyless != 1 {
		t.Fatalf("err %v, node called %d times", err, n.calls.Load())
	}
	cl.AllowPlaintext = true
	resp, info, err := cl.Call(context.Background(), testCall(), Query{})
	if err != nil || resp.Status != wire.StatusSuccess || info.Encrypted || n.calls.Load() != 1 {
		t.Fatalf("plaintext override: resp %+v err %v", resp, err)
	}
}

// A key that is present but malformed fails closed on that node (nothing
// sent, no plaintext fallback) and the next keyed node serves.
func TestCX_CallerSkipsUnusableKey(t *testing.T) {
	bad := newSDKNode(t, 200, `{"status":"success","result":{}}`)
	srv, key, _ := cxNode(t, func(c wire.Call) *wire.Response {
		return &wire.Response{TaskID: c.TaskID, Status: wire.StatusSuccess, Result: json.RawMessage(`{}`)}
	})
	broken := key
	broken.Key, broken.PublicKey = "AAAA", ""
	b := bad.sum("bad")
	b.CXPublicKey = &broken
	good := wire.NodeSummary{NodeID: "good", Endpoint: srv.URL, Available: true, CXPublicKey: &key}
	cl := &Caller{AllowPlaintext: true, Directory: directoryWith(t, b, good)}
	_, info, err := cl.Call(context.Background(), testCall(), Query{})
	if err != nil || info.NodeID != "good" || bad.calls.Load() != 0 || info.Tried[0].Code != wire.CodeE064 {
		t.Fatalf("info %+v err %v bad called %d", info, err, bad.calls.Load())
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}
