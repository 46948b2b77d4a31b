package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// taskNode is a fake provider: it answers POST /v1/task with a fixed status.
type taskNode struct {
	srv   *httptest.Server
	mu    sync.Mutex
	calls []wire.Call
	hdrs  []string
}

func newTaskNode(t *testing.T, answer func(w http.ResponseWriter, c wire.Call)) *taskNode {
	n := &taskNode{}
	n.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var c wire.Call
		_ = json.NewDecoder(r.Body).Decode(&c)
		n.mu.Lock()
		n.calls = append(n.calls, c)
		n.hdrs = append(n.hdrs, r.Header.Get(HeaderConsumerToken))
		n.mu.Unlock()
		answer(w, c)
	}))
	t.Cleanup(n.srv.Close)
	return n
}

func (n *taskNode) count() int { n.mu.Lock(); defer n.mu.Unlock(); return len(n.calls) }

func ok(w http.ResponseWriter, c wire.Call) {
	writeJSON(w, 200, wire.Response{TaskID: c.TaskID, Status: wire.StatusSuccess, Result: json.RawMessage(`{"ok":1}`)})
}

func failWith(code wire.Code) func(http.ResponseWriter, wire.Call) {
	return func(w http.ResponseWriter, c wire.Call) { writeErr(w, code.HTTPStatus(), code, "failed") }
}

// directoryWith serves a discover answer listing nodes in the given order.
func directoryWith(t *testing.T, nodes ...wire.NodeSummary) *Client {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, wire.NodeList{Nodes: nodes, Count: len(nodes)})
	}))
	t.Cleanup(srv.Close)
	c, _ := New(srv.URL)
	return c
}

func summary(id string, n *taskNode, score float64) wire.NodeSummary {
	return wire.NodeSummary{NodeID: id, Endpoint: n.srv.URL, Score: score, Available: true}
}

func testCall() *wire.Call {
	return &wire.Call{TaskID: NewUUID(), Intent: wire.IntentChat, Payload: json.RawMessage(`{"messages":[{"role":"user","content":"hi"}]}`),
		Constraints: wire.Constraints{TimeoutMs: 5000}}
}

// PROXY-ROUTE-01/02: discover first, submit to the highest-scored node.
func TestPROXY_ROUTE_01_02_BestNodeFirst(t *testing.T) {
	a := newTaskNode(t, ok)
	b := newTaskNode(t, ok)
	cl := &Caller{AllowPlaintext: true, RetryBase: time.Millisecond, Directory: directoryWith(t, summary("a", a, 0.9), summary("b", b, 0.5))}
	resp, info, err := cl.Call(context.Background(), testCall(), Query{})
	if err != nil || resp.Status != wire.StatusSuccess || info.NodeID != "a" {
		t.Fatalf("resp %+v info %+v err %v", resp, info, err)
	}
	if a.count() != 1 || b.count() != 0 {
		t.Fatalf("calls a=%d b=%d", a.count(), b.count())
	}
}

// PROXY-ROUTE-03 / PROXY-TIMEOUT-01: a failing node is followed by the next;
// each attempt keeps task_id and gets a fresh call_id.
func TestPROXY_ROUTE_03_RetryNextNode(t *testing.T) {
	a := newTaskNode(t, failWith(wire.CodeCapacityExceeded))
	b := newTaskNode(t, failWith(wire.CodeBackendError))
	c := newTaskNode(t, ok)
	cl := &Caller{AllowPlaintext: true, RetryBase: time.Millisecond, Directory: directoryWith(t, summary("a", a, 0.9), summary("b", b, 0.8), summary("c", c, 0.7))}
	call := testCall()
	resp, info, err := cl.Call(context.Background(), call, Query{})
	if err != nil || resp.Status != wire.StatusSuccess || info.NodeID != "c" || len(info.Tried) != 3 {
		t.Fatalf("resp %+v info %+v err %v", resp, info, err)
	}
	ids := map[string]bool{}
	for _, n := range []*taskNode{a, b, c} {
		n.mu.Lock()
		if n.calls[0].TaskID != call.TaskID {
			t.Fatal("task_id changed between attempts")
		}
		ids[n.calls[0].CallID] = true
		n.mu.Unlock()
	}
	if len(ids) != 3 {
		t.Fatal("call_id reused between attempts")
	}
}

// PROXY-ROUTE-04 / PROXY-ERR-02: every candidate fails → structured
// no_available_node, at most 3 attempts.
func TestPROXY_ERR_02_AllCandidatesFail(t *testing.T) {
	var nodes []*taskNode
	var sums []wire.NodeSummary
	for i := range 4 {
		n := newTaskNode(t, failWith(wire.CodeUnavailable))
		nodes = append(nodes, n)
		sums = append(sums, summary(string(rune('a'+i)), n, 0.9-float64(i)/10))
	}
	// An unreachable endpoint counts as a failed attempt too.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	sums[1].Endpoint = dead.URL
	cl := &Caller{AllowPlaintext: true, RetryBase: time.Millisecond, Directory: directoryWith(t, sums...)}
	_, info, err := cl.Call(context.Background(), testCall(), Query{})
	var werr *wire.Error
	if !errors.As(err, &werr) || werr.Code != wire.CodeNoAvailableNode {
		t.Fatalf("err %v", err)
	}
	if len(info.Tried) != DefaultCallAttempts || nodes[3].count() != 0 {
		t.Fatalf("tried %d nodes (4th called %d times)", len(info.Tried), nodes[3].count())
	}
}

// PROXY-ERR-01: zero candidates is IICP-E033, distinct from no_available_node.
func TestPROXY_ERR_01_NoCandidates(t *testing.T) {
	unavailable := wire.NodeSummary{NodeID: "x", Endpoint: "http://127.0.0.1:1", Available: false}
	cl := &Caller{AllowPlaintext: true, RetryBase: time.Millisecond, Directory: directoryWith(t, unavailable)}
	_, _, err := cl.Call(context.Background(), testCall(), Query{})
	var werr *wire.Error
	if !errors.As(err, &werr) || werr.Code != wire.CodeE033 || werr.Status() != 503 {
		t.Fatalf("err %v", err)
	}
}

// A failure that would repeat everywhere (auth, validation) is returned as
// the node's answer without burning the other candidates.
func TestNonRetryableFailureStops(t *testing.T) {
	a := newTaskNode(t, failWith(wire.CodeUnauthorized))
	b := newTaskNode(t, ok)
	cl := &Caller{AllowPlaintext: true, RetryBase: time.Millisecond, Directory: directoryWith(t, summary("a", a, 0.9), summary("b", b, 0.5))}
	resp, info, err := cl.Call(context.Background(), testCall(), Query{})
	if err != nil || resp.Status != wire.StatusError || resp.Error.Code != wire.CodeUnauthorized || info.NodeID != "a" {
		t.Fatalf("resp %+v err %v", resp, err)
	}
	if b.count() != 0 {
		t.Fatal("retried an authorization failure on another node")
	}
}

// Skip excludes candidates; Credential supplies a per-node consumer token.
func TestSkipAndCredential(t *testing.T) {
	self := newTaskNode(t, ok)
	other := newTaskNode(t, ok)
	cl := &Caller{
		AllowPlaintext: true,
		Directory:      directoryWith(t, summary("self", self, 0.9), summary("other", other, 0.5)),
		Skip:           func(n wire.NodeSummary) bool { return n.NodeID == "self" },
		Credential: func(_ context.Context, nodeID, intent string) (string, error) {
			return "ct-for-" + nodeID, nil
		},
	}
	_, info, err := cl.Call(context.Background(), testCall(), Query{})
	if err != nil || info.NodeID != "other" || self.count() != 0 {
		t.Fatalf("info %+v err %v", info, err)
	}
	other.mu.Lock()
	defer other.mu.Unlock()
	if other.hdrs[0] != "ct-for-other" {
		t.Fatalf("consumer token header %q", other.hdrs[0])
	}
}

func TestNewUUIDIsV4(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		u := NewUUID()
		if !wire.ValidUUIDv4(u) || seen[u] {
			t.Fatalf("bad or repeated uuid %q", u)
		}
		seen[u] = true
	}
}

func TestLastAnswerNamesCodeWithoutControlCharacters(t *testing.T) {
	if got := lastAnswer(nil); got != "" {
		t.Fatalf("nil: %q", got)
	}
	r := &wire.Response{Error: wire.NewError(wire.CodeE029, "model not served\n\x1b[31mby this node")}
	got := lastAnswer(r)
	if !strings.Contains(got, "IICP-E029") || strings.ContainsAny(got, "\n\x1b") {
		t.Fatalf("lastAnswer = %q", got)
	}
	long := &wire.Response{Error: wire.NewError(wire.CodeBackendError, strings.Repeat("é", 500))}
	if n := len([]rune(lastAnswer(long))); n > lastAnswerMax+60 {
		t.Fatalf("not capped: %d runes", n)
	}
}
