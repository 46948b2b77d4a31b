package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/httperr"
	"github.com/meshnode/meshnode/internal/httperr/httperrtest"
	"github.com/meshnode/meshnode/wire"
)

// testCall is a valid chat CALL for the task client tests.
func testCall() *wire.Call {
	return &wire.Call{TaskID: wire.UUIDv4(testUUIDBits()), Intent: wire.IntentChat, Payload: json.RawMessage(`{"messages":[{"role":"user","content":"hi"}]}`),
		Constraints: wire.Constraints{TimeoutMs: 5000}}
}

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

// testUUIDBits is 16 random bytes for a task_id.
func testUUIDBits() [16]byte {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return b
}

// garbageCanary is bytes a broken node echoes instead of HTTP.
const garbageCanary = "canary-5be2-echoed-payload"

// TestPostTaskErrorHidesGarbageResponseBytes: a node answering raw bytes
// instead of HTTP gets an error that never quotes them (route logs it).
func TestPostTaskErrorHidesGarbageResponseBytes(t *testing.T) {
	n := wire.NodeSummary{NodeID: "a", Endpoint: httperrtest.GarbageServer(t, garbageCanary), Available: true}
	resp, st, err := PostTask(context.Background(), privateHTTPClient(t), n, testCall(), "", true)
	if err == nil || resp != nil || st.HTTPStatus != 0 {
		t.Fatalf("garbage answer accepted: resp %+v status %d", resp, st.HTTPStatus)
	}
	if strings.Contains(err.Error(), garbageCanary) {
		t.Fatalf("err %q", err)
	}
	var opaque *httperr.OpaqueError
	if !errors.As(err, &opaque) || !strings.Contains(opaque.Unwrap().Error(), garbageCanary) {
		t.Fatalf("test premise: net/http no longer quotes the bytes (err %v)", err)
	}
}

func privateHTTPClient(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}
