package route

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshnode/meshnode/dirbridge/dirclient"
	"github.com/meshnode/meshnode/dirbridge/httpapi"
	"github.com/meshnode/meshnode/wire"
)

// taskNode is a real HTTP node (httptest) answering POST /v1/task; the
// router reaches it through the real HTTPTransport.
type taskNode struct {
	srv    *httptest.Server
	mu     sync.Mutex
	calls  []wire.Call
	tokens []string
	raw    [][]byte
}

func newTaskNode(t *testing.T, answer func(w http.ResponseWriter, c wire.Call)) *taskNode {
	t.Helper()
	n := &taskNode{}
	n.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var c wire.Call
		_ = json.Unmarshal(b, &c)
		n.mu.Lock()
		n.calls = append(n.calls, c)
		n.tokens = append(n.tokens, r.Header.Get(httpapi.HeaderConsumerToken))
		n.raw = append(n.raw, b)
		n.mu.Unlock()
		answer(w, c)
	}))
	t.Cleanup(n.srv.Close)
	return n
}

func (n *taskNode) count() int { n.mu.Lock(); defer n.mu.Unlock(); return len(n.calls) }

func (n *taskNode) target(id string) Target {
	return Target{Path: PathHTTP, NodeID: id, Plaintext: true,
		Node: wire.NodeSummary{NodeID: id, Endpoint: n.srv.URL, Available: true}}
}

func ok(w http.ResponseWriter, c wire.Call) {
	writeJSON(w, 200, wire.Response{TaskID: c.TaskID, Status: wire.StatusSuccess, Result: json.RawMessage(`{"ok":1}`)})
}

func failWith(code wire.Code) func(http.ResponseWriter, wire.Call) {
	return func(w http.ResponseWriter, _ wire.Call) {
		writeJSON(w, code.HTTPStatus(), wire.NewError(code, "failed").Envelope())
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// fakeFinder is a Finder with a fixed answer that counts its lookups.
type fakeFinder struct {
	targets []Target
	err     error
	finds   atomic.Int32
}

func (f *fakeFinder) Find(context.Context, Query) ([]Target, error) {
	f.finds.Add(1)
	return f.targets, f.err
}

func finder(ts ...Target) *fakeFinder { return &fakeFinder{targets: ts} }

func testCall() *wire.Call {
	return &wire.Call{TaskID: newUUID(), Intent: wire.IntentChat,
		Payload:     json.RawMessage(`{"messages":[{"role":"user","content":"hi"}]}`),
		Constraints: wire.Constraints{TimeoutMs: 5000}}
}

// newRouter is an HTTP router over finders with a 1 ms backoff.
func newRouter(t *testing.T, finders []Finder, opts ...Option) *Router {
	t.Helper()
	opts = append([]Option{WithTransport(PathHTTP, HTTPTransport{}), WithRetryBase(time.Millisecond)}, opts...)
	r, err := New(finders, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// directoryWith serves a discover answer listing nodes in the given order.
func directoryWith(t *testing.T, nodes ...wire.NodeSummary) *dirclient.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 200, wire.NodeList{Nodes: nodes, Count: len(nodes)})
	}))
	t.Cleanup(srv.Close)
	c, err := dirclient.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
