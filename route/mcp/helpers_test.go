package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/meshnode/meshnode/dirbridge/httpapi"
	"github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/node"
	"github.com/meshnode/meshnode/node/backend"
	"github.com/meshnode/meshnode/route"
	"github.com/meshnode/meshnode/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	testNodeID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	testToken  = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	answerText = "the mesh answered"
)

// llm is an OpenAI-compatible backend (httptest) that records what it was sent.
type llm struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen []string // raw request bodies and headers
}

func newLLM(t testing.TB) *llm {
	l := &llm{}
	l.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		l.mu.Lock()
		l.seen = append(l.seen, string(b), r.Header.Get("Authorization"))
		l.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/embeddings"):
			_, _ = io.WriteString(w, `{"object":"list","model":"m","data":[{"object":"embedding","index":0,"embedding":[0.5,0.25]}],"usage":{"prompt_tokens":1,"total_tokens":1}}`)
		default:
			_, _ = io.WriteString(w, `{"id":"c1","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"`+answerText+`"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":3,"total_tokens":4}}`)
		}
	}))
	t.Cleanup(l.srv.Close)
	return l
}

func (l *llm) sawAny(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, x := range l.seen {
		if strings.Contains(x, s) {
			return true
		}
	}
	return false
}

// fixed is a Finder that always offers one target.
type fixed struct{ t route.Target }

func (f fixed) Find(context.Context, route.Query) ([]route.Target, error) {
	return []route.Target{f.t}, nil
}

// testNode is a real node: engine, OpenAI-compatible backend over HTTP,
// the HTTP bridge on loopback (dev plaintext).
type testNode struct {
	url  string
	llm  *llm
	logs *testutil.SyncBuffer
}

func startNode(t testing.TB) *testNode {
	t.Helper()
	n := &testNode{llm: newLLM(t), logs: &testutil.SyncBuffer{}}
	oa, err := backend.NewOpenAI(n.llm.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	router, err := backend.NewRouter(
		backend.Route{Intent: wire.IntentChat, Mode: backend.ModeChat, Backend: oa, Models: []string{"m"}},
		backend.Route{Intent: wire.IntentEmbedding, Mode: backend.ModeEmbedding, Backend: oa, Models: []string{"m"}})
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewJSONHandler(n.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := prometheus.NewRegistry()
	eng, err := node.New(node.Config{NodeID: testNodeID, NodeToken: testToken, MaxConcurrent: 4, Version: "test"},
		router, node.WithRegisterer(reg), node.WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := httpapi.New(eng, httpapi.WithAddr("127.0.0.1:0"), httpapi.WithPlaintextDev(),
		httpapi.WithRegistry(reg), httpapi.WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node Serve: %v", err)
		}
		wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer wcancel()
		_ = eng.Wait(wctx)
	})
	n.url = srv.URL()
	return n
}

// mcpServer is the MCP server under test on loopback, routing to n with
// the node's token (the operator's own node).
type mcpServer struct {
	s    *Server
	url  string
	logs *testutil.SyncBuffer
}

func startMCP(t testing.TB, n *testNode, key string, mutate ...func(*Config)) *mcpServer {
	t.Helper()
	target := route.Target{Path: route.PathHTTP, NodeID: testNodeID, Plaintext: true,
		Node: wire.NodeSummary{NodeID: testNodeID, Endpoint: n.url, Available: true}}
	r, err := route.New([]route.Finder{fixed{target}}, route.WithTransport(route.PathHTTP, tokenTransport{}),
		route.WithRetryBase(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	logs := &testutil.SyncBuffer{}
	cfg := Config{Router: r, APIKey: key, Version: "test", AllowPlaintext: true, Timeout: 5 * time.Second,
		Logger:  slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Intents: func(context.Context) []string { return []string{wire.IntentChat, wire.IntentEmbedding} }}
	for _, m := range mutate {
		m(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("mcp Serve: %v", err)
		}
	})
	return &mcpServer{s: s, url: s.URL(), logs: logs}
}

// tokenTransport is route.HTTPTransport with the node's operator token in
// the CALL (how a node's own operator calls it; the test node has no
// directory to mint consumer tokens).
type tokenTransport struct{}

func (tokenTransport) Send(ctx context.Context, t route.Target, call *wire.Call, cred string) (*wire.Response, route.Sent, error) {
	c := *call
	c.Auth = &wire.Auth{NodeToken: testToken}
	return route.HTTPTransport{HTTP: noKeepAlive}.Send(ctx, t, &c, cred)
}

var noKeepAlive = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// post sends one raw JSON-RPC body with headers and returns status and body.
func post(t *testing.T, url, body string, hdr map[string]string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := noKeepAlive.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("status %d: body is not JSON: %q", resp.StatusCode, b)
		}
	}
	return resp.StatusCode, m
}

// rpcErr returns error.code and error.data.reason of a JSON-RPC answer.
func rpcErr(t *testing.T, m map[string]any) (int, string) {
	t.Helper()
	e, ok := m["error"].(map[string]any)
	if !ok {
		t.Fatalf("no JSON-RPC error in %v", m)
	}
	code, _ := e["code"].(float64)
	reason := ""
	if d, ok := e["data"].(map[string]any); ok {
		reason, _ = d["reason"].(string)
	}
	return int(code), reason
}
