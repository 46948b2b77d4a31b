package route

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/wire"
)

// PROXY-ROUTE-01/02: the first finder's best target is used; later
// targets and later finders are not touched.
func TestPROXY_ROUTE_01_02_BestTargetFirst(t *testing.T) {
	a, b, c := newTaskNode(t, ok), newTaskNode(t, ok), newTaskNode(t, ok)
	first, second := finder(a.target("a"), b.target("b")), finder(c.target("c"))
	res, err := newRouter(t, []Finder{first, second}).Call(context.Background(), testCall(), Query{})
	if err != nil || res.Response.Status != wire.StatusSuccess || res.NodeID != "a" || res.Path != PathHTTP || res.Attempts != 1 {
		t.Fatalf("res %+v err %v", res, err)
	}
	if a.count() != 1 || b.count() != 0 || c.count() != 0 || second.finds.Load() != 0 {
		t.Fatalf("calls a=%d b=%d c=%d, second finder asked %d times", a.count(), b.count(), c.count(), second.finds.Load())
	}
}

// Ordering across finders: the first finder's targets (mesh peers, by
// default) come first; the next finder is asked only once they failed, and
// a finder that cannot look is passed over.
func TestFinderOrderAndFailover(t *testing.T) {
	busy, down, good := newTaskNode(t, failWith(wire.CodeCapacityExceeded)), newTaskNode(t, failWith(wire.CodeUnavailable)), newTaskNode(t, ok)
	broken := &fakeFinder{err: errors.New("directory unreachable")}
	meshLike, dir := finder(busy.target("busy")), finder(down.target("down"), good.target("good"))
	res, err := newRouter(t, []Finder{meshLike, broken, dir}).Call(context.Background(), testCall(), Query{})
	if err != nil || res.NodeID != "good" || res.Attempts != 3 || broken.finds.Load() != 1 {
		t.Fatalf("res %+v err %v", res, err)
	}
	var order []string
	for _, a := range res.Tried {
		order = append(order, a.NodeID)
	}
	if fmt.Sprint(order) != "[busy down good]" {
		t.Fatalf("tried %v", order)
	}
}

// PROXY-ROUTE-03 / PROXY-TIMEOUT-01: transient failures move on to the next
// node; each attempt keeps task_id and gets a fresh call_id.
func TestPROXY_ROUTE_03_RetryNextNode(t *testing.T) {
	a := newTaskNode(t, failWith(wire.CodeCapacityExceeded))
	b := newTaskNode(t, failWith(wire.CodeTaskTimeout))
	c := newTaskNode(t, ok)
	call := testCall()
	res, err := newRouter(t, []Finder{finder(a.target("a"), b.target("b"), c.target("c"))}).Call(context.Background(), call, Query{})
	if err != nil || res.NodeID != "c" || len(res.Tried) != 3 {
		t.Fatalf("res %+v err %v", res, err)
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

// PROXY-ROUTE-04 / PROXY-ERR-02: every candidate fails → no_available_node
// after at most 3 attempts (an unreachable node is an attempt too), with
// the last answer kept.
func TestPROXY_ERR_02_AllCandidatesFail(t *testing.T) {
	var ts []Target
	var nodes []*taskNode
	for i := range 4 {
		n := newTaskNode(t, failWith(wire.CodeUnavailable))
		nodes = append(nodes, n)
		ts = append(ts, n.target(string(rune('a'+i))))
	}
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	ts[1].Node.Endpoint = dead.URL
	res, err := newRouter(t, []Finder{finder(ts...)}).Call(context.Background(), testCall(), Query{})
	var werr *wire.Error
	if !errors.As(err, &werr) || werr.Code != wire.CodeNoAvailableNode {
		t.Fatalf("err %v", err)
	}
	if res.Attempts != DefaultAttempts || nodes[3].count() != 0 || res.Response == nil || res.Response.Error.Code != wire.CodeUnavailable {
		t.Fatalf("attempts %d, 4th called %d times, last %+v", res.Attempts, nodes[3].count(), res.Response)
	}
}

// PROXY-ERR-01: no candidate at all is IICP-E033 (503), distinct from
// no_available_node; a finder's own error (E064) wins over it.
func TestPROXY_ERR_01_NoCandidates(t *testing.T) {
	_, err := newRouter(t, []Finder{finder()}).Call(context.Background(), testCall(), Query{})
	var werr *wire.Error
	if !errors.As(err, &werr) || werr.Code != wire.CodeE033 || werr.Status() != 503 {
		t.Fatalf("err %v", err)
	}
	keyless := &fakeFinder{err: wire.NewError(wire.CodeE064, "keyless")}
	_, err = newRouter(t, []Finder{&fakeFinder{err: errors.New("down")}, keyless}).Call(context.Background(), testCall(), Query{})
	if !errors.As(err, &werr) || werr.Code != wire.CodeE064 {
		t.Fatalf("err %v", err)
	}
}

// iicp-semantics.md §6.1: answers that would fail everywhere (401, 4xx,
// backend_error 502, internal_error 500) are final: returned with the
// node's RESPONSE and as a Go error, without burning the other candidates.
func TestFinalAnswersStop(t *testing.T) {
	for _, code := range []wire.Code{wire.CodeUnauthorized, wire.CodeValidationError, wire.CodeBackendError, wire.CodeInternal} {
		a, b := newTaskNode(t, failWith(code)), newTaskNode(t, ok)
		res, err := newRouter(t, []Finder{finder(a.target("a"), b.target("b"))}).Call(context.Background(), testCall(), Query{})
		var werr *wire.Error
		if !errors.As(err, &werr) || werr.Code != code {
			t.Errorf("%s: err %v, want the node's error as a Go error", code, err)
			continue
		}
		if res.Response == nil || res.Response.Error.Code != code || res.NodeID != "a" || b.count() != 0 {
			t.Errorf("%s: res %+v, b called %d times", code, res, b.count())
		}
	}
}

// Per-target credentials: each attempt carries the token minted for its
// own target; a target no credential can be had for is skipped without
// spending an attempt.
func TestPerTargetCredentials(t *testing.T) {
	a := newTaskNode(t, failWith(wire.CodeUnavailable))
	b, c := newTaskNode(t, ok), newTaskNode(t, ok)
	var mu sync.Mutex
	var asked []string
	cred := WithCredential(func(_ context.Context, tg Target, intent string) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, tg.NodeID+"/"+intent)
		if tg.NodeID == "b" {
			return "", errors.New("no directory issues a token for b")
		}
		return "ct-for-" + tg.NodeID, nil
	})
	res, err := newRouter(t, []Finder{finder(a.target("a"), b.target("b"), c.target("c"))}, cred).Call(context.Background(), testCall(), Query{})
	if err != nil || res.NodeID != "c" || res.Attempts != 2 || b.count() != 0 {
		t.Fatalf("res %+v err %v, b called %d times", res, err, b.count())
	}
	if a.tokens[0] != "ct-for-a" || c.tokens[0] != "ct-for-c" {
		t.Fatalf("tokens a=%q c=%q", a.tokens[0], c.tokens[0])
	}
	if fmt.Sprint(asked) != fmt.Sprintf("[a/%s b/%[1]s c/%[1]s]", wire.IntentChat) {
		t.Fatalf("credentials asked for %v", asked)
	}
}

// WithSkip leaves targets out (the calling node itself).
func TestSkip(t *testing.T) {
	self, other := newTaskNode(t, ok), newTaskNode(t, ok)
	r := newRouter(t, []Finder{finder(self.target("self"), other.target("other"))},
		WithSkip(func(t Target) bool { return t.NodeID == "self" }))
	if res, err := r.Call(context.Background(), testCall(), Query{}); err != nil || res.NodeID != "other" || self.count() != 0 {
		t.Fatalf("res %+v err %v", res, err)
	}
}

// iicp-semantics.md §2.2 vs §6.1: capacity_exceeded switches at once, other
// transient failures back off first. With a one-hour base pause, only a
// switch without backoff can finish before the deadline.
func TestCapacityExceededSwitchesWithoutBackoff(t *testing.T) {
	full := newTaskNode(t, func(w http.ResponseWriter, _ wire.Call) {
		writeJSON(w, 429, map[string]any{"error": map[string]any{"code": "IICP-E021", "message": "capacity_exceeded",
			"qos_class": "best_effort", "retry_after_ms": 2000}})
	})
	good := newTaskNode(t, ok)
	r := newRouter(t, []Finder{finder(full.target("full"), good.target("good"))}, WithRetryBase(time.Hour))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := r.Call(ctx, testCall(), Query{})
	if err != nil || res.NodeID != "good" {
		t.Fatalf("res %+v err %v", res, err)
	}
	if a := res.Tried[0]; a.Code != wire.CodeCapacityExceeded || a.QoSClass != wire.QoSBestEffort || a.Status != 429 {
		t.Fatalf("first attempt %+v", a)
	}
	down := newTaskNode(t, failWith(wire.CodeUnavailable))
	r = newRouter(t, []Finder{finder(down.target("down"), good.target("good2"))}, WithRetryBase(time.Hour))
	short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	if _, err := r.Call(short, testCall(), Query{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("after a 503 the next attempt did not wait for the backoff: err %v", err)
	}
}

// The §8 fallback (this node's own engine) serves when no candidate does.
func TestFallbackServesWhenNoCandidate(t *testing.T) {
	down := newTaskNode(t, failWith(wire.CodeUnavailable))
	local := transportFunc(func(_ context.Context, tg Target, c *wire.Call, _ string) (*wire.Response, Sent, error) {
		return &wire.Response{TaskID: c.TaskID, Status: wire.StatusSuccess, NodeID: "me"}, Sent{}, nil
	})
	for _, f := range []*fakeFinder{finder(), finder(down.target("down"))} {
		res, err := newRouter(t, []Finder{f}, WithFallback(local)).Call(context.Background(), testCall(), Query{})
		if err != nil || res.Path != PathLocal || res.Response.Status != wire.StatusSuccess {
			t.Fatalf("res %+v err %v", res, err)
		}
	}
}

// Query.Remote keeps the call off this node on every path: the fallback
// does not serve it. A credential hook that refuses every candidate with an
// IICP error (a node with no directory facing only other operators' peers)
// is what the caller learns, and no target is sent the task.
func TestRemoteSkipsFallbackAndCredentialRefusalIsNamed(t *testing.T) {
	stranger := newTaskNode(t, ok)
	local := transportFunc(func(_ context.Context, tg Target, c *wire.Call, _ string) (*wire.Response, Sent, error) {
		return &wire.Response{TaskID: c.TaskID, Status: wire.StatusSuccess, NodeID: "me"}, Sent{}, nil
	})
	refusal := wire.NewError(wire.CodeUnauthorized, "another operator")
	cred := WithCredential(func(context.Context, Target, string) (string, error) { return "", refusal })
	r := newRouter(t, []Finder{finder(stranger.target("stranger"))}, WithFallback(local), cred)
	_, err := r.Call(context.Background(), testCall(), Query{Remote: true})
	var werr *wire.Error
	if !errors.As(err, &werr) || werr.Code != wire.CodeUnauthorized || stranger.count() != 0 {
		t.Fatalf("err %v, stranger called %d times", err, stranger.count())
	}
	if res, err := r.Call(context.Background(), testCall(), Query{}); err != nil || res.Path != PathLocal {
		t.Fatalf("without Remote the fallback serves: %+v %v", res, err)
	}
}

// transportFunc adapts a function to Transport (the local fallback in the
// daemon is this node's engine; here a function stands in for it).
type transportFunc func(context.Context, Target, *wire.Call, string) (*wire.Response, Sent, error)

func (f transportFunc) Send(ctx context.Context, t Target, c *wire.Call, cred string) (*wire.Response, Sent, error) {
	return f(ctx, t, c, cred)
}

// SEC-LOG-01: the router's logs name paths, nodes and failure classes but
// never a payload or a credential, whatever the attempts went through.
func TestSEC_LOG_01_RouterLogsNoPayloadOrToken(t *testing.T) {
	var logs testutil.SyncBuffer
	lg := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	down := newTaskNode(t, failWith(wire.CodeUnavailable))
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	gone := down.target("gone")
	gone.Node.Endpoint = dead.URL
	cred := WithCredential(func(_ context.Context, tg Target, _ string) (string, error) {
		if tg.NodeID == "refused" {
			return "", errors.New("refused")
		}
		return "SECRET-TOKEN-7f3a", nil
	})
	r := newRouter(t, []Finder{&fakeFinder{err: errors.New("directory down")}, finder(down.target("down"), down.target("refused"), gone)},
		cred, WithLogger(lg))
	call := testCall()
	call.Payload = json.RawMessage(`{"messages":[{"role":"user","content":"PROMPT-MARKER-91c2"}]}`)
	if _, err := r.Call(context.Background(), call, Query{}); err == nil {
		t.Fatal("every node failed, yet no error")
	}
	out := logs.String()
	if !strings.Contains(out, "attempt failed") {
		t.Fatalf("no attempt logged: %q", out)
	}
	for _, secret := range []string{"SECRET-TOKEN-7f3a", "PROMPT-MARKER-91c2"} {
		if strings.Contains(out, secret) {
			t.Fatalf("log carries %s:\n%s", secret, out)
		}
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
