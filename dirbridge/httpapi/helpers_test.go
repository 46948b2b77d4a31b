package httpapi_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime/pprof"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshnode/meshnode/dirbridge/httpapi"
	"github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/node"
	"github.com/meshnode/meshnode/node/backend"
	"github.com/meshnode/meshnode/wire"
)

const (
	testToken  = "node-token-0123456789abcdef0123456789abcdef"
	testNodeID = "6f1c2f0e-3b7a-4c1e-9d2a-0a1b2c3d4e5f"
)

// llmServer is an OpenAI-compatible test backend with steerable delay,
// holding and failure.
type llmServer struct {
	*httptest.Server
	gate     atomic.Pointer[chan struct{}]
	fail     atomic.Bool
	inFlight atomic.Int64
	calls    atomic.Int64
	delay    atomic.Int64 // simulated inference time per request (ns)
}

func newLLMServer(t testing.TB) *llmServer {
	t.Helper()
	s := &llmServer{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", s.chat)
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"object":"list","data":[{"id":"test-model","object":"model"}]}`)
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(func() { s.release(); s.Close() })
	return s
}

func (s *llmServer) hold() { ch := make(chan struct{}); s.gate.Store(&ch) }
func (s *llmServer) release() {
	if g := s.gate.Swap(nil); g != nil {
		close(*g)
	}
}

// chatReply is a fixed completion; the test server never looks inside the
// prompt except to echo it on failure, like a careless upstream would.
const chatReply = `{"id":"c1","object":"chat.completion","model":"test-model","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}`

func (s *llmServer) chat(w http.ResponseWriter, r *http.Request) {
	s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	s.calls.Add(1)
	body, _ := io.ReadAll(r.Body)
	if g := s.gate.Load(); g != nil {
		select {
		case <-*g:
		case <-r.Context().Done():
			return
		}
	}
	if d := time.Duration(s.delay.Load()); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if s.fail.Load() {
		// A detailed upstream failure that echoes the prompt: none of it may surface.
		http.Error(w, "Traceback (most recent call last): /home/op/llm.py "+string(body), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, chatReply)
}

// panicBackend panics with the request payload in the panic value.
type panicBackend struct{}

func (panicBackend) Name() string                    { return "panicky" }
func (panicBackend) Check(ctx context.Context) error { return nil }
func (panicBackend) Do(_ context.Context, req backend.Request) (backend.Result, error) {
	panic("backend exploded on " + string(req.Payload))
}

// harness is a real node: engine + TLS bridge on 127.0.0.1:0 + LLM server.
type harness struct {
	srv    *httpapi.Server
	eng    *node.Engine
	llm    *llmServer
	reg    *prometheus.Registry
	logs   *testutil.SyncBuffer
	client *http.Client
	url    string
}

type harnessConfig struct {
	maxConc    int
	engineOpts []node.Option
	apiOpts    []httpapi.Option
	routes     func(openai backend.Backend) []backend.Route
	infoLogs   bool // log at info (production level) instead of debug
}

func startNode(t testing.TB, hc harnessConfig) *harness {
	t.Helper()
	var llm *llmServer
	// Goroutines inherit profiler labels from the goroutine that starts
	// them: the backend's serving goroutines are labelled hop=backend and
	// the node's hop=node, so a CPU profile of the overhead benchmark splits
	// by hop (bench_test.go, labelled).
	pprof.Do(context.Background(), pprof.Labels("hop", "backend"), func(context.Context) { llm = newLLMServer(t) })
	tr := &http.Transport{MaxIdleConnsPerHost: 128}
	t.Cleanup(tr.CloseIdleConnections)
	openai, err := backend.NewOpenAI(llm.URL, backend.WithHTTPClient(&http.Client{Transport: tr}))
	if err != nil {
		t.Fatal(err)
	}
	routes := []backend.Route{{Intent: wire.IntentChat, Mode: backend.ModeChat, Backend: openai, Models: []string{"test-model"}}}
	if hc.routes != nil {
		routes = hc.routes(openai)
	}
	router, err := backend.NewRouter(routes...)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	logs := &testutil.SyncBuffer{}
	level := slog.LevelDebug
	if hc.infoLogs {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: level}))
	eng, err := node.New(node.Config{NodeID: testNodeID, NodeToken: testToken, MaxConcurrent: max(hc.maxConc, 1), Version: "test"},
		router, append([]node.Option{node.WithRegisterer(reg), node.WithLogger(logger)}, hc.engineOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	opts := append([]httpapi.Option{httpapi.WithAddr("127.0.0.1:0"), httpapi.WithSelfSignedDir(t.TempDir()),
		httpapi.WithRegistry(reg), httpapi.WithLogger(logger)}, hc.apiOpts...)
	srv, err := httpapi.New(eng, opts...)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{srv: srv, eng: eng, llm: llm, reg: reg, logs: logs}
	pprof.Do(context.Background(), pprof.Labels("hop", "node"), func(context.Context) { serve(t, srv) })
	h.url = srv.URL()
	h.client = clientFor(t, srv)
	t.Cleanup(func() {
		llm.release()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := eng.Wait(ctx); err != nil {
			t.Errorf("engine still running backend calls: %v", err)
		}
	})
	return h
}

// serve runs srv.Serve until the test ends and checks it shut down cleanly.
func serve(t testing.TB, srv *httpapi.Server) {
	t.Helper()
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
}

// clientFor trusts srv's certificate and speaks TLS 1.3 only.
func clientFor(t testing.TB, srv *httpapi.Server) *http.Client {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 128, ForceAttemptHTTP2: false}
	if tc := srv.TLSConfig(); tc != nil {
		pool := x509.NewCertPool()
		pool.AddCert(tc.Certificates[0].Leaf)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// taskBody is a CALL as a JSON-able map (so tests can omit or break fields).
func taskBody(text string) map[string]any {
	return map[string]any{
		"task_id":     newUUID(),
		"intent":      wire.IntentChat,
		"payload":     map[string]any{"messages": []map[string]string{{"role": "user", "content": text}}},
		"constraints": map[string]any{"timeout_ms": 5000},
		"auth":        map[string]any{"node_token": testToken},
	}
}

// reply is one HTTP exchange as the tests inspect it.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body is not JSON (%v): %s", err, r.body)
	}
	return m
}

// errCode returns error.code of a JSON envelope or RESPONSE.
func (r reply) errCode(t testing.TB) string {
	t.Helper()
	e, _ := r.json(t)["error"].(map[string]any)
	if e == nil {
		t.Fatalf("no error object: %s", r.body)
	}
	code, _ := e["code"].(string)
	return code
}

func (h *harness) do(t testing.TB, method, path string, body []byte, hdr map[string]string) reply {
	t.Helper()
	req, err := http.NewRequest(method, h.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

func (h *harness) postTask(t testing.TB, call map[string]any, hdr map[string]string) reply {
	t.Helper()
	b, err := json.Marshal(call)
	if err != nil {
		t.Fatal(err)
	}
	return h.do(t, http.MethodPost, "/v1/task", b, hdr)
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, 5*time.Second, what, cond)
}

func slogJSON(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
