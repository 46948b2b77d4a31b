package node

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/node/backend"
	"github.com/meshnode/meshnode/wire"
)

// openAIServer is an OpenAI-compatible test backend (POST
// /v1/chat/completions, GET /v1/models) whose behaviour tests steer:
// a gate that holds requests, a failure switch and an arrival log.
type openAIServer struct {
	*httptest.Server
	gate      atomic.Pointer[chan struct{}] // non-nil: requests wait for close
	fail      atomic.Bool                   // answer 500 with a detailed body
	badModels atomic.Bool                   // /v1/models answers 503
	inFlight  atomic.Int64
	maxTokens atomic.Int64 // max_tokens of the last request (0: absent)
	cancelled atomic.Int64 // requests whose context ended while held
	mu        sync.Mutex
	arrivals  []string // "user" message content, in arrival order
}

func newOpenAIServer(t testing.TB) *openAIServer {
	t.Helper()
	s := &openAIServer{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", s.chat)
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		if s.badModels.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, `{"object":"list","data":[{"id":"test-model","object":"model"}]}`)
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(func() {
		s.release()
		s.Close()
	})
	return s
}

// hold makes new requests wait until release; it returns the gate.
func (s *openAIServer) hold() { ch := make(chan struct{}); s.gate.Store(&ch) }

func (s *openAIServer) release() {
	if g := s.gate.Swap(nil); g != nil {
		close(*g)
	}
}

func (s *openAIServer) chat(w http.ResponseWriter, r *http.Request) {
	s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	var req struct {
		Model     string `json:"model"`
		MaxTokens int64  `json:"max_tokens"`
		Messages  []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"messages"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Messages) == 0 {
		http.Error(w, `{"error":{"message":"bad request"}}`, http.StatusBadRequest)
		return
	}
	content := req.Messages[len(req.Messages)-1].Content
	s.maxTokens.Store(req.MaxTokens)
	s.mu.Lock()
	s.arrivals = append(s.arrivals, content)
	s.mu.Unlock()
	if g := s.gate.Load(); g != nil {
		select {
		case <-*g:
		case <-r.Context().Done():
			s.cancelled.Add(1)
			return
		}
	}
	if s.fail.Load() {
		// A detailed upstream error: none of it may reach the caller.
		http.Error(w, `{"error":{"message":"CUDA OOM at /home/op/models/x.gguf: `+content+`"}}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"id":"c1","object":"chat.completion","model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}`, req.Model)
}

func (s *openAIServer) arrivalOrder() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.arrivals...)
}

// funcBackend runs fn: for paths a real server cannot produce (panics,
// ctx-ignoring backends).
type funcBackend struct {
	name string
	fn   func(ctx context.Context, req backend.Request) (backend.Result, error)
}

func (f *funcBackend) Name() string { return f.name }
func (f *funcBackend) Do(ctx context.Context, req backend.Request) (backend.Result, error) {
	return f.fn(ctx, req)
}
func (f *funcBackend) Check(context.Context) error { return nil }

const (
	testToken  = "node-token-0123456789abcdef0123456789abcdef"
	testNodeID = "6f1c2f0e-3b7a-4c1e-9d2a-0a1b2c3d4e5f"
	// A custom intent no test resolver serves.
	unservedIntent = "urn:iicp:intent:x.acme:unserved:v1"
)

// fixture bundles an engine wired to a real OpenAI-compatible server.
type fixture struct {
	eng  *Engine
	srv  *openAIServer
	reg  *prometheus.Registry
	logs *testutil.SyncBuffer
}

func newFixture(t testing.TB, maxConc int, opts ...Option) *fixture {
	t.Helper()
	srv := newOpenAIServer(t)
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	be, err := backend.NewOpenAI(srv.URL, backend.WithHTTPClient(&http.Client{Transport: tr}))
	if err != nil {
		t.Fatal(err)
	}
	return newFixtureWith(t, maxConc, srv, be, opts...)
}

// newFixtureWith serves llm:chat:v1 with model "test-model" on be through
// the real backend.Router.
func newFixtureWith(t testing.TB, maxConc int, srv *openAIServer, be backend.Backend, opts ...Option) *fixture {
	t.Helper()
	router, err := backend.NewRouter(backend.Route{Intent: wire.IntentChat, Mode: backend.ModeChat, Backend: be, Models: []string{"test-model"}})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	logs := &testutil.SyncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	all := append([]Option{WithRegisterer(reg), WithLogger(logger)}, opts...)
	eng, err := New(Config{NodeID: testNodeID, NodeToken: testToken, MaxConcurrent: maxConc, Version: "test"}, router, all...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if srv != nil {
			srv.release()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := eng.Wait(ctx); err != nil {
			t.Errorf("backend calls still running at cleanup: %v", err)
		}
	})
	return &fixture{eng: eng, srv: srv, reg: reg, logs: logs}
}

// newUUID returns a random UUID v4.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// chatCall builds a valid chat CALL carrying text as the user message.
func chatCall(text string) *wire.Call {
	payload, _ := json.Marshal(map[string]any{"messages": []map[string]string{{"role": "user", "content": text}}})
	return &wire.Call{
		TaskID:      newUUID(),
		Intent:      wire.IntentChat,
		Payload:     payload,
		Constraints: wire.Constraints{TimeoutMs: 5000},
		Auth:        &wire.Auth{NodeToken: testToken},
	}
}

var httpCaller = wire.Caller{Transport: "http", RemoteIP: "127.0.0.1"}

// waitFor waits up to 5 s for cond.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, 5*time.Second, what, cond)
}

// wantError asserts an error RESPONSE with code and status.
func wantError(t testing.TB, r *wire.Response, code wire.Code, status string) {
	t.Helper()
	if r.Error == nil {
		t.Fatalf("want error %s, got success %+v", code, r)
	}
	if r.Error.Code != code || r.Code != code {
		t.Fatalf("want code %s, got error.code=%s code=%s (%s)", code, r.Error.Code, r.Code, r.Error.Message)
	}
	if r.Status != status {
		t.Fatalf("want status %q, got %q", status, r.Status)
	}
	if string(r.Result) != "null" {
		t.Fatalf("failed RESPONSE result = %s, want null", r.Result)
	}
}

// metricText gathers reg in the text exposition format.
func metricText(t testing.TB, reg *prometheus.Registry) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var sb strings.Builder
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			sb.WriteString(mf.GetName())
			for _, l := range m.GetLabel() {
				fmt.Fprintf(&sb, " %s=%q", l.GetName(), l.GetValue())
			}
			switch {
			case m.Counter != nil:
				fmt.Fprintf(&sb, " %v", m.Counter.GetValue())
			case m.Gauge != nil:
				fmt.Fprintf(&sb, " %v", m.Gauge.GetValue())
			case m.Histogram != nil:
				fmt.Fprintf(&sb, " count=%d", m.Histogram.GetSampleCount())
			}
			sb.WriteByte('\n')
		}
	}
	return sb.String()
}
