package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"time"
)

// benchModel is the one model the test backend serves.
const benchModel = "bench-model"

// llmBackend is an OpenAI-compatible chat backend on loopback. It answers
// with the last user message as the assistant's content, so every caller
// can check that the answer it got is the answer to its own request; delay
// simulates inference time.
type llmBackend struct {
	srv   *httptest.Server
	delay time.Duration
	calls atomic.Int64 // chat completions answered successfully
}

func newLLMBackend(delay time.Duration) *llmBackend {
	b := &llmBackend{delay: delay}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", b.chat)
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"object":"list","data":[{"id":"`+benchModel+`","object":"model"}]}`)
	})
	b.srv = httptest.NewServer(mux)
	return b
}

func (b *llmBackend) url() string { return b.srv.URL }
func (b *llmBackend) close()      { b.srv.Close() }

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type chatRequest struct {
	Model    string        `json:"model"`
	Messages []chatMessage `json:"messages"`
}

type chatChoice struct {
	Index        int         `json:"index"`
	Message      chatMessage `json:"message"`
	FinishReason string      `json:"finish_reason"`
}

type chatUsage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

type chatResponse struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   chatUsage    `json:"usage"`
}

func (b *llmBackend) chat(w http.ResponseWriter, r *http.Request) {
	var req chatRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil || len(req.Messages) == 0 {
		http.Error(w, `{"error":{"message":"bad request"}}`, http.StatusBadRequest)
		return
	}
	if b.delay > 0 {
		t := time.NewTimer(b.delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	n := b.calls.Add(1)
	last := req.Messages[len(req.Messages)-1].Content
	resp := chatResponse{
		ID: "chatcmpl-" + strconv.FormatInt(n, 10), Object: "chat.completion", Model: benchModel,
		Choices: []chatChoice{{Message: chatMessage{Role: "assistant", Content: last}, FinishReason: "stop"}},
		Usage:   chatUsage{PromptTokens: 4, CompletionTokens: 4, TotalTokens: 8},
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

// prompt is request seq's user message: unique per request of a path, so
// an answer delivered to the wrong caller is detected.
func prompt(pathName string, seq int64) string {
	return "bench " + pathName + " " + strconv.FormatInt(seq, 10)
}

// checkChat verifies an OpenAI-shaped chat result answers want.
func checkChat(raw []byte, want string) error {
	var res struct {
		Choices []struct {
			Message chatMessage `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return fmt.Errorf("chat result is not JSON: %w", err)
	}
	if len(res.Choices) == 0 {
		return errors.New("chat result has no choices")
	}
	if res.Choices[0].Message.Content != want {
		return fmt.Errorf("chat content: %w", errMismatch)
	}
	return nil
}

// nodeTransport mirrors the tuning of the node's pooled backend client
// (node/backend/openai.go pooledTransport, unexported), so the direct
// baseline talks to the backend exactly as the node does.
func nodeTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4 * 64,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// directPath calls the backend's chat completions the way the node's
// backend client does, and checks the answer: the in-process baseline.
func directPath(be *llmBackend) (*path, func()) {
	client := &http.Client{Transport: nodeTransport()}
	p := chatPath("direct", "backend", client, be.url()+"/v1/chat/completions")
	return p, client.CloseIdleConnections
}

// chatPath is a path posting one OpenAI chat completion per call to target
// and checking the answer echoes the prompt; who names the peer in errors.
func chatPath(name, who string, client *http.Client, target string) *path {
	p := &path{name: name}
	p.do = func(ctx context.Context, seq int64) error {
		want := prompt(p.name, seq)
		body, err := json.Marshal(chatRequest{Model: benchModel, Messages: []chatMessage{{Role: "user", Content: want}}})
		if err != nil {
			return err
		}
		status, raw, err := postJSON(ctx, client, target, body)
		if err != nil {
			return err
		}
		if status != http.StatusOK {
			return fmt.Errorf("%s answered HTTP %d", who, status)
		}
		return checkChat(raw, want)
	}
	return p
}

// postJSON POSTs a JSON body and reads at most 1 MiB of the answer: the
// request both the direct path and the bridge paths measure.
func postJSON(ctx context.Context, client *http.Client, target string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, raw, nil
}
