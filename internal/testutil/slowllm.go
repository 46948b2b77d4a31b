package testutil

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// SlowLLM is an OpenAI-compatible HTTP backend for tests and benchmarks
// that generates slowly: a streamed chat or completion sends one token per
// Interval as an SSE chunk, then usage and [DONE]. Mount Handler on an
// httptest.Server. It serves GET /v1/models, POST /v1/chat/completions,
// /v1/completions and /v1/embeddings.
type SlowLLM struct {
	// Model is the one model listed and answered as.
	Model string
	// Tokens is the answer, one token per chunk.
	Tokens []string
	// Interval is the pause before each token.
	Interval time.Duration

	started   atomic.Int64
	finished  atomic.Int64
	cancelled atomic.Int64
	mu        sync.Mutex
	doneAt    []time.Time
}

// NewSlowLLM answers with n tokens ("tok0 ", "tok1 ", …), one per interval.
func NewSlowLLM(model string, n int, interval time.Duration) *SlowLLM {
	s := &SlowLLM{Model: model, Interval: interval}
	for i := range n {
		s.Tokens = append(s.Tokens, fmt.Sprintf("tok%d ", i))
	}
	return s
}

// Text is the whole answer.
func (s *SlowLLM) Text() string { return strings.Join(s.Tokens, "") }

// Started, Finished and Cancelled count generation requests: begun, sent
// to the end, and abandoned because the client went away.
func (s *SlowLLM) Started() int64   { return s.started.Load() }
func (s *SlowLLM) Finished() int64  { return s.finished.Load() }
func (s *SlowLLM) Cancelled() int64 { return s.cancelled.Load() }

// FinishedAt lists when each finished generation wrote its last token.
func (s *SlowLLM) FinishedAt() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.doneAt...)
}

// Handler serves the OpenAI-compatible API.
func (s *SlowLLM) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"object":"list","data":[{"id":%q,"object":"model"}]}`, s.Model)
	})
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) { s.generate(w, r, true) })
	mux.HandleFunc("POST /v1/completions", func(w http.ResponseWriter, r *http.Request) { s.generate(w, r, false) })
	mux.HandleFunc("POST /v1/embeddings", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"object":"list","model":%q,"data":[{"object":"embedding","index":0,"embedding":[0.25,-0.5,1]}],"usage":{"prompt_tokens":3,"total_tokens":3}}`, s.Model)
	})
	return mux
}

func (s *SlowLLM) generate(w http.ResponseWriter, r *http.Request, chat bool) {
	var req struct {
		Stream bool `json:"stream"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, `{"error":{"message":"bad request"}}`, http.StatusBadRequest)
		return
	}
	// Read the body to its end: only then does net/http watch the
	// connection and cancel r.Context() when the client goes away (the
	// decoder may stop before EOF, and pause would never see the hang-up).
	_, _ = io.Copy(io.Discard, r.Body)
	s.started.Add(1)
	if !req.Stream {
		s.buffered(w, r, chat)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	fl, _ := w.(http.Flusher)
	for i, tok := range s.Tokens {
		if !s.pause(r) {
			return
		}
		var chunk string
		if chat {
			role := ""
			if i == 0 {
				role = `"role":"assistant",`
			}
			chunk = fmt.Sprintf(`{"id":"c1","object":"chat.completion.chunk","model":%q,"choices":[{"index":0,"delta":{%s"content":%q},"finish_reason":null}]}`, s.Model, role, tok)
		} else {
			chunk = fmt.Sprintf(`{"id":"c1","object":"text_completion","model":%q,"choices":[{"index":0,"text":%q,"finish_reason":null}]}`, s.Model, tok)
		}
		fmt.Fprintf(w, "data: %s\n\n", chunk)
		if fl != nil {
			fl.Flush()
		}
	}
	s.markDone()
	n := len(s.Tokens)
	if chat {
		fmt.Fprintf(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":%q,\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n", s.Model)
	} else {
		fmt.Fprintf(w, "data: {\"id\":\"c1\",\"object\":\"text_completion\",\"model\":%q,\"choices\":[{\"index\":0,\"text\":\"\",\"finish_reason\":\"stop\"}]}\n\n", s.Model)
	}
	fmt.Fprintf(w, "data: {\"id\":\"c1\",\"model\":%q,\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":%d,\"total_tokens\":%d}}\n\ndata: [DONE]\n\n", s.Model, n, n+5)
	if fl != nil {
		fl.Flush()
	}
}

// pause waits one interval; false when the client went away.
func (s *SlowLLM) pause(r *http.Request) bool {
	if s.Interval <= 0 {
		return r.Context().Err() == nil
	}
	t := time.NewTimer(s.Interval)
	defer t.Stop()
	select {
	case <-r.Context().Done():
		s.cancelled.Add(1)
		return false
	case <-t.C:
		return true
	}
}

func (s *SlowLLM) markDone() {
	s.finished.Add(1)
	s.mu.Lock()
	s.doneAt = append(s.doneAt, time.Now())
	s.mu.Unlock()
}

func (s *SlowLLM) buffered(w http.ResponseWriter, r *http.Request, chat bool) {
	for range s.Tokens {
		if !s.pause(r) {
			return
		}
	}
	s.markDone()
	w.Header().Set("Content-Type", "application/json")
	n := len(s.Tokens)
	if chat {
		fmt.Fprintf(w, `{"id":"c1","object":"chat.completion","model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":%d,"total_tokens":%d}}`, s.Model, s.Text(), n, n+5)
		return
	}
	fmt.Fprintf(w, `{"id":"c1","object":"text_completion","model":%q,"choices":[{"index":0,"text":%q,"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":%d,"total_tokens":%d}}`, s.Model, s.Text(), n, n+5)
}
