package openai

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	oai "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/route"
)

const testPrompt = "tell me a secret about prompt-canary-7731"

func client(f *gatewayFixture, opts ...option.RequestOption) oai.Client {
	all := append([]option.RequestOption{option.WithBaseURL(f.url), option.WithAPIKey("unused-on-loopback"), option.WithMaxRetries(0)}, opts...)
	return oai.NewClient(all...)
}

func chatParams() oai.ChatCompletionNewParams {
	return oai.ChatCompletionNewParams{Model: slowModel, Messages: []oai.ChatCompletionMessageParamUnion{oai.UserMessage(testPrompt)}}
}

// The official OpenAI Go client gets a chat completion from a mesh peer's
// backend through this node's gateway; nothing of the prompt or the answer
// reaches the gateway's log (SEC-LOG-01).
func TestOpenAIChatThroughMesh_SEC_LOG_01(t *testing.T) {
	f := newGateway(t, testutil.NewSlowLLM(slowModel, 5, time.Millisecond), 4)
	c := client(f)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.Chat.Completions.New(ctx, chatParams())
	if err != nil {
		t.Fatalf("chat: %v", err)
	}
	if len(resp.Choices) != 1 || resp.Choices[0].Message.Content != f.llm.Text() || resp.Model != slowModel ||
		resp.ID == "" || resp.Usage.CompletionTokens != 5 {
		t.Fatalf("chat response %+v", resp)
	}
	logs := f.logs.String()
	if strings.Contains(logs, "prompt-canary-7731") || strings.Contains(logs, "tok1") || !strings.Contains(logs, `"path":"mesh"`) {
		t.Fatalf("gateway log leaks payload or lacks the route: %s", logs)
	}
}

// Streaming chat through the mesh: the tokens reach the OpenAI client while
// the serving node's backend is still generating (one token per 20 ms),
// the accumulated message is the whole answer, and usage arrives when
// asked for.
func TestOpenAIStreamingChatThroughMesh(t *testing.T) {
	f := newGateway(t, testutil.NewSlowLLM(slowModel, 10, 20*time.Millisecond), 4)
	c := client(f)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := chatParams()
	p.StreamOptions = oai.ChatCompletionStreamOptionsParam{IncludeUsage: oai.Bool(true)}
	stream := c.Chat.Completions.NewStreaming(ctx, p)
	var acc oai.ChatCompletionAccumulator
	var firstAt time.Time
	for stream.Next() {
		ch := stream.Current()
		acc.AddChunk(ch)
		if firstAt.IsZero() && len(ch.Choices) > 0 && ch.Choices[0].Delta.Content != "" {
			firstAt = time.Now()
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	if len(acc.Choices) != 1 || acc.Choices[0].Message.Content != f.llm.Text() || acc.Usage.CompletionTokens != 10 {
		t.Fatalf("accumulated %+v usage %+v", acc.Choices, acc.Usage)
	}
	done := f.llm.FinishedAt()
	if len(done) != 1 || firstAt.IsZero() || !firstAt.Before(done[0]) {
		t.Fatalf("first token at %v, backend finished at %v: the answer was buffered", firstAt, done)
	}
}

// A streaming client that goes away cancels the backend request on the
// serving node, across the mesh.
func TestOpenAIStreamingDisconnectCancelsBackend(t *testing.T) {
	f := newGateway(t, testutil.NewSlowLLM(slowModel, 500, 10*time.Millisecond), 4)
	c := client(f)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream := c.Chat.Completions.NewStreaming(ctx, chatParams())
	for n := 0; stream.Next(); n++ {
		if n == 2 {
			cancel()
			break
		}
	}
	_ = stream.Close()
	testutil.WaitFor(t, 10*time.Second, "the serving backend request to be cancelled", func() bool { return f.llm.Cancelled() == 1 })
	if f.llm.Finished() != 0 {
		t.Fatal("the backend generated to the end")
	}
}

// Legacy completions, streamed and not.
func TestOpenAICompletions(t *testing.T) {
	f := newGateway(t, testutil.NewSlowLLM(slowModel, 4, time.Millisecond), 4)
	c := client(f)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := oai.CompletionNewParams{Model: slowModel, Prompt: oai.CompletionNewParamsPromptUnion{OfString: oai.String(testPrompt)}}
	resp, err := c.Completions.New(ctx, p)
	if err != nil || len(resp.Choices) != 1 || resp.Choices[0].Text != f.llm.Text() {
		t.Fatalf("completion %+v err %v", resp, err)
	}
	stream := c.Completions.NewStreaming(ctx, p)
	var text strings.Builder
	for stream.Next() {
		for _, ch := range stream.Current().Choices {
			text.WriteString(ch.Text)
		}
	}
	if err := stream.Err(); err != nil || text.String() != f.llm.Text() {
		t.Fatalf("streamed completion %q err %v", text.String(), err)
	}
}

// Embeddings and the model list (with the serving count).
func TestOpenAIEmbeddingsAndModels(t *testing.T) {
	f := newGateway(t, testutil.NewSlowLLM(slowModel, 1, time.Millisecond), 4)
	c := client(f)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	emb, err := c.Embeddings.New(ctx, oai.EmbeddingNewParams{Model: slowModel, Input: oai.EmbeddingNewParamsInputUnion{OfString: oai.String(testPrompt)}})
	if err != nil || len(emb.Data) != 1 || len(emb.Data[0].Embedding) != 3 || emb.Data[0].Embedding[1] != -0.5 {
		t.Fatalf("embeddings %+v err %v", emb, err)
	}
	models, err := c.Models.List(ctx)
	if err != nil || len(models.Data) != 1 || models.Data[0].ID != slowModel {
		t.Fatalf("models %+v err %v", models, err)
	}
	if got := models.Data[0].JSON.ExtraFields["serving_nodes"].Raw(); got != "1" {
		t.Fatalf("serving_nodes %q, want 1", got)
	}
	m, err := c.Models.Get(ctx, slowModel)
	if err != nil || m.ID != slowModel {
		t.Fatalf("model %+v err %v", m, err)
	}
}

// Errors reach the client in OpenAI's shape with the IICP code inside.
func TestOpenAIErrors(t *testing.T) {
	f := newGateway(t, testutil.NewSlowLLM(slowModel, 1, time.Millisecond), 4)
	c := client(f)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cases := []struct {
		name   string
		params oai.ChatCompletionNewParams
		status int
		code   string
		param  string
	}{
		// No node serves the pinned model.
		{"unknown model", oai.ChatCompletionNewParams{Model: "no-such-model", Messages: chatParams().Messages}, 404, "IICP-E029", ""},
		// The request lacks its messages.
		{"no messages", oai.ChatCompletionNewParams{Model: slowModel}, 400, "validation_error", "messages"},
	}
	for _, tc := range cases {
		_, err := c.Chat.Completions.New(ctx, tc.params)
		var ae *oai.Error
		if !errors.As(err, &ae) || ae.StatusCode != tc.status || ae.Code != tc.code || ae.Param != tc.param || ae.Type == "" {
			t.Errorf("%s: err %v (%+v), want %d %s", tc.name, err, ae, tc.status, tc.code)
		}
	}
}

// When every node that serves the model is saturated the client gets 429
// with Retry-After, which the OpenAI SDKs back off on.
func TestOpenAISaturated429(t *testing.T) {
	f := newGateway(t, testutil.NewSlowLLM(slowModel, 300, 10*time.Millisecond), 1)
	c := client(f)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	busy := c.Chat.Completions.NewStreaming(ctx, chatParams())
	if !busy.Next() {
		t.Fatalf("first stream: %v", busy.Err())
	}
	defer busy.Close()
	_, err := c.Chat.Completions.New(ctx, chatParams())
	var ae *oai.Error
	if !errors.As(err, &ae) || ae.StatusCode != 429 || ae.Code != "capacity_exceeded" || ae.Type != "rate_limit_error" {
		t.Fatalf("err %v, want 429 capacity_exceeded", err)
	}
	if ra := ae.Response.Header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Fatalf("Retry-After %q", ra)
	}
}

// An API key, when set, is required; a non-loopback address without one
// is refused at construction.
func TestOpenAIAPIKey(t *testing.T) {
	const key = "sk-test-0123456789abcdef"
	f := newGateway(t, testutil.NewSlowLLM(slowModel, 1, time.Millisecond), 4, WithAPIKey(key))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := client(f)
	_, err := cl.Models.List(ctx)
	var ae *oai.Error
	if !errors.As(err, &ae) || ae.StatusCode != 401 || ae.Type != "authentication_error" {
		t.Fatalf("without the key: %v", err)
	}
	keyed := client(f, option.WithAPIKey(key))
	if _, err := keyed.Models.List(ctx); err != nil {
		t.Fatalf("with the key: %v", err)
	}
	if strings.Contains(f.logs.String(), key) {
		t.Fatal("the API key reached the log")
	}
	if _, err := New(nil, nil); err == nil {
		t.Fatal("nil router accepted")
	}
	r, _ := route.New(nil)
	none := func(context.Context) []route.Model { return nil }
	if _, err := New(r, none, WithAddr("0.0.0.0:0")); err == nil || !strings.Contains(err.Error(), "API key") {
		t.Fatalf("non-loopback without a key: %v", err)
	}
	if _, err := New(r, none, WithAddr("0.0.0.0:0"), WithAPIKey(key)); err != nil {
		t.Fatalf("non-loopback with a key: %v", err)
	}
}

// A web page cannot use a keyless API through the user's browser: a
// "simple" cross-origin POST (text/plain), a request from another origin
// and a DNS-rebound Host are refused before any routing.
func TestOpenAIBrowserAttacks(t *testing.T) {
	f := newGateway(t, testutil.NewSlowLLM(slowModel, 1, time.Millisecond), 4)
	body := `{"model":"slow-model","messages":[{"role":"user","content":"hi"}]}`
	cases := []struct {
		name   string
		ct     string
		origin string
		host   string
		status int
	}{
		// A form or fetch without preflight can only send text/plain.
		{"simple cross-origin POST", "text/plain", "https://evil.example", "", 415},
		// A page on another origin.
		{"foreign origin", "application/json", "https://evil.example", "", 403},
		// DNS rebinding: the page's own name resolving to 127.0.0.1.
		{"rebound host", "application/json", "", "evil.example:8091", 403},
		// A local tool: allowed.
		{"local client", "application/json", "", "", 200},
		// A page served from this machine.
		{"loopback origin", "application/json", "http://localhost:3000", "", 200},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest(http.MethodPost, f.url+"/chat/completions", strings.NewReader(body))
		req.Header.Set("Content-Type", tc.ct)
		if tc.origin != "" {
			req.Header.Set("Origin", tc.origin)
		}
		if tc.host != "" {
			req.Host = tc.host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.status)
		}
	}
	if f.llm.Started() != 2 {
		t.Fatalf("backend ran %d times, want 2 (only the allowed requests)", f.llm.Started())
	}
}
