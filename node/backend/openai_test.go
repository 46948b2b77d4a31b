package backend

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/httperr"
	"github.com/meshnode/meshnode/internal/httperr/httperrtest"
)

func chatReq(payload string) Request {
	return Request{Intent: "urn:iicp:intent:llm:chat:v1", Model: "llama3.2", Mode: ModeChat, Payload: json.RawMessage(payload)}
}

// decodeOut unmarshals a Result.Output for assertions.
func decodeOut(t *testing.T, res Result) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(res.Output, &m); err != nil {
		t.Fatalf("output is not a JSON object: %v", err)
	}
	return m
}

func firstMessageContent(t *testing.T, out map[string]any) string {
	t.Helper()
	choices, _ := out["choices"].([]any)
	if len(choices) == 0 {
		t.Fatalf("no choices in %v", out)
	}
	msg, _ := choices[0].(map[string]any)["message"].(map[string]any)
	s, _ := msg["content"].(string)
	return s
}

func TestOpenAIChat(t *testing.T) {
	f := newFakeOpenAI(t)
	c := newClient(t, f, WithAPIKey("sk-test-key"))
	req := chatReq(`{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}],
		"max_tokens":5000,"temperature":0.5,"n":8,"best_of":4,"model":"other","top_p":0.9}`)
	req.MaxTokens = 256
	res, err := c.Do(context.Background(), req)
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	if res.Model != "llama3.2" || res.TokensUsed != 10 {
		t.Fatalf("model %q tokens %d, want llama3.2/10", res.Model, res.TokensUsed)
	}
	out := decodeOut(t, res)
	if got := firstMessageContent(t, out); got != "Hello from fake" {
		t.Fatalf("content %q", got)
	}
	if out["object"] != "chat.completion" {
		t.Fatalf("object %v", out["object"])
	}
	body, hdr := f.last(t)
	if got := hdr.Get("Authorization"); got != "Bearer sk-test-key" {
		t.Fatalf("Authorization %q", got)
	}
	// The route limit caps a larger max_tokens; model is the resolved one.
	if body["max_tokens"] != float64(256) || body["model"] != "llama3.2" {
		t.Fatalf("max_tokens %v model %v", body["max_tokens"], body["model"])
	}
	// Fields that multiply cost are not forwarded; sampling fields are.
	for _, k := range []string{"n", "best_of", "stream"} {
		if _, ok := body[k]; ok {
			t.Fatalf("field %q forwarded", k)
		}
	}
	if body["top_p"] != 0.9 || body["temperature"] != 0.5 {
		t.Fatalf("sampling fields not forwarded: %v", body)
	}
}

func TestOpenAIChatAppliesRouteMaxTokens(t *testing.T) {
	f := newFakeOpenAI(t)
	c := newClient(t, f)
	req := chatReq(`{"messages":[{"role":"user","content":"hi"}]}`)
	req.MaxTokens = 64
	if _, err := c.Do(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	body, hdr := f.last(t)
	if body["max_tokens"] != float64(64) {
		t.Fatalf("max_tokens %v, want the route limit 64", body["max_tokens"])
	}
	if hdr.Get("Authorization") != "" {
		t.Fatal("Authorization sent without an API key")
	}
}

func TestOpenAICompletion(t *testing.T) {
	f := newFakeOpenAI(t)
	c := newClient(t, f)
	res, err := c.Do(context.Background(), Request{Model: "llama3.2", Mode: ModeCompletion,
		Payload: json.RawMessage(`{"prompt":"tell me","max_tokens":4}`)})
	if err != nil {
		t.Fatal(err)
	}
	out := decodeOut(t, res)
	text := out["choices"].([]any)[0].(map[string]any)["text"]
	if text != "once upon a time" || res.TokensUsed != 6 || out["object"] != "text_completion" {
		t.Fatalf("got %v tokens %d", out, res.TokensUsed)
	}
	if body, _ := f.last(t); body["prompt"] != "tell me" || body["max_tokens"] != float64(4) {
		t.Fatalf("request body %v", body)
	}
}

func TestOpenAIEmbedding(t *testing.T) {
	f := newFakeOpenAI(t)
	c := newClient(t, f)
	for _, tc := range []struct {
		name    string
		payload string
		want    int
	}{
		{"single string", `{"input":"a"}`, 1},
		{"array", `{"input":["a","b","c"]}`, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := c.Do(context.Background(), Request{Model: "nomic-embed-text", Mode: ModeEmbedding,
				Payload: json.RawMessage(tc.payload)})
			if err != nil {
				t.Fatal(err)
			}
			var out embeddingResult
			if err := json.Unmarshal(res.Output, &out); err != nil {
				t.Fatal(err)
			}
			if len(out.Data) != tc.want || out.Data[0].Embedding[1] != -1.5 || res.TokensUsed != 4 {
				t.Fatalf("got %+v tokens %d", out, res.TokensUsed)
			}
			if res.Model != "nomic-embed-text" {
				t.Fatalf("model %q", res.Model)
			}
		})
	}
}

func TestOpenAISummarise(t *testing.T) {
	f := newFakeOpenAI(t)
	c := newClient(t, f)
	res, err := c.Do(context.Background(), Request{Model: "llama3.2", Mode: ModeSummarise, MaxTokens: 100,
		Payload: json.RawMessage(`{"text":"a long text","max_length":20,"format":"bullets","language":"de"}`)})
	if err != nil {
		t.Fatal(err)
	}
	var out summaryResult
	if err := json.Unmarshal(res.Output, &out); err != nil {
		t.Fatal(err)
	}
	if out.Summary != "Hello from fake" || out.Format != "bullets" || len(out.Choices) != 1 {
		t.Fatalf("summary result %+v", out)
	}
	body, _ := f.last(t)
	msgs := body["messages"].([]any)
	sys := msgs[0].(map[string]any)
	user := msgs[1].(map[string]any)
	if sys["role"] != "system" || user["role"] != "user" || user["content"] != "a long text" {
		t.Fatalf("messages %v", msgs)
	}
	prompt := sys["content"].(string)
	for _, want := range []string{"bullet", "20 words", `"de"`} {
		if !strings.Contains(prompt, want) {
			t.Fatalf("system prompt lacks %q", want)
		}
	}
}

func TestOpenAIStreamChat(t *testing.T) {
	f := newFakeOpenAI(t)
	c := newClient(t, f)
	res, err := c.Do(context.Background(), chatReq(`{"messages":[{"role":"user","content":"hi"}],"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	out := decodeOut(t, res)
	if got := firstMessageContent(t, out); got != "Hello from fake" {
		t.Fatalf("assembled content %q", got)
	}
	if res.TokensUsed != 10 {
		t.Fatalf("tokens %d, want usage from the final chunk", res.TokensUsed)
	}
	body, hdr := f.last(t)
	opts, _ := body["stream_options"].(map[string]any)
	if body["stream"] != true || opts["include_usage"] != true || hdr.Get("Accept") != "text/event-stream" {
		t.Fatalf("stream request %v", body)
	}
}

func TestOpenAIStreamCompletionConfigured(t *testing.T) {
	f := newFakeOpenAI(t)
	c := newClient(t, f, WithStreaming(true))
	res, err := c.Do(context.Background(), Request{Model: "m", Mode: ModeCompletion, Payload: json.RawMessage(`{"prompt":"p"}`)})
	if err != nil {
		t.Fatal(err)
	}
	out := decodeOut(t, res)
	ch := out["choices"].([]any)[0].(map[string]any)
	if ch["text"] != "once upon a time" || ch["finish_reason"] != "length" {
		t.Fatalf("assembled %v", ch)
	}
	// The stream sent no usage: tokens stay 0 rather than being guessed.
	if res.TokensUsed != 0 || out["usage"] != nil {
		t.Fatalf("tokens %d usage %v", res.TokensUsed, out["usage"])
	}
}

func TestOpenAIStreamToolCallsAndFraming(t *testing.T) {
	f := newFakeOpenAI(t)
	f.handle("/v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		// CRLF line ends, a comment, an event: field and a data event split
		// over two data: lines (joined with "\n", valid JSON whitespace).
		_, _ = io.WriteString(w, ": keep-alive\r\n\r\n"+
			"event: message\r\ndata: {\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\r\n"+
			"data: \"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get\",\"arguments\":\"{\\\"a\\\"\"}}]}}]}\r\n\r\n"+
			"data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\":1}\"}}]},\"finish_reason\":\"tool_calls\"}]}\r\n\r\n"+
			"data: [DONE]\r\n\r\n")
	})
	c := newClient(t, f)
	res, err := c.Do(context.Background(), chatReq(`{"messages":[{"role":"user","content":"x"}],"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Choices []struct {
			Message struct {
				Content   *string `json:"content"`
				ToolCalls []struct {
					ID       string `json:"id"`
					Function struct{ Name, Arguments string }
				} `json:"tool_calls"`
			} `json:"message"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(res.Output, &out); err != nil {
		t.Fatal(err)
	}
	m := out.Choices[0].Message
	if m.Content != nil || len(m.ToolCalls) != 1 || m.ToolCalls[0].ID != "call_1" ||
		m.ToolCalls[0].Function.Name != "get" || m.ToolCalls[0].Function.Arguments != `{"a":1}` ||
		out.Choices[0].FinishReason != "tool_calls" {
		t.Fatalf("assembled %s", res.Output)
	}
}

func TestOpenAIStreamIgnoredByServer(t *testing.T) {
	f := newFakeOpenAI(t)
	f.handle("/v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, `{"model":"m","choices":[{"message":{"role":"assistant","content":"plain"}}]}`)
	})
	c := newClient(t, f, WithStreaming(true))
	res, err := c.Do(context.Background(), chatReq(`{"messages":[{"role":"user","content":"x"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := firstMessageContent(t, decodeOut(t, res)); got != "plain" {
		t.Fatalf("content %q", got)
	}
}

func TestOpenAIStreamFailures(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		// Cut before any finish_reason and before [DONE]: truncated answer.
		{"truncated", "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"par\"}}]}\n\n", "ended before"},
		// An error object mid-stream (vLLM, hosted gateways).
		{"error event", "data: {\"error\":{\"message\":\"overloaded\"}}\n\n", "error in the stream"},
		{"garbage chunk", "data: {not json\n\n", "malformed"},
		{"no choices", "data: [DONE]\n\n", "no choices"},
		{"long line", "data: \"" + strings.Repeat("x", maxSSELine+10) + "\"\n\n", "line exceeds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeOpenAI(t)
			f.handle("/v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				_, _ = io.WriteString(w, tc.body)
			})
			c := newClient(t, f, WithStreaming(true), WithMaxResponseBytes(4*maxSSELine))
			_, err := c.Do(context.Background(), chatReq(`{"messages":[{"role":"user","content":"x"}]}`))
			if !errors.Is(err, ErrBackend) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want ErrBackend containing %q", err, tc.want)
			}
		})
	}
}

// TestNODE_TASK_07_BackendHTTPErrors: non-2xx answers become a StatusError
// wrapping ErrBackend (the engine maps it to 502 backend_error) that carries
// the status but none of the body.
func TestNODE_TASK_07_BackendHTTPErrors(t *testing.T) {
	for _, code := range []int{400, 401, 404, 422, 429, 500, 502, 503} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			f := newFakeOpenAI(t)
			f.handle("/v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(code)
				_, _ = io.WriteString(w, `{"error":{"message":"Traceback /home/ops/model.py secret-detail"}}`)
			})
			c := newClient(t, f)
			_, err := c.Do(context.Background(), chatReq(`{"messages":[{"role":"user","content":"x"}]}`))
			var se *StatusError
			if !errors.As(err, &se) || se.StatusCode != code || !errors.Is(err, ErrBackend) {
				t.Fatalf("err %v, want StatusError %d", err, code)
			}
			for _, leak := range []string{"Traceback", "/home/", "secret-detail"} {
				if strings.Contains(err.Error(), leak) {
					t.Fatalf("error %q leaks %q", err, leak)
				}
			}
		})
	}
}

func TestOpenAISlowBackendHonoursContext(t *testing.T) {
	f := newFakeOpenAI(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	for _, path := range []string{"/v1/chat/completions", "/v1/completions"} {
		f.handle(path, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v1/completions" {
				// Headers and a first chunk arrive, then the stream stalls.
				writeSSE(w, []string{`{"choices":[{"index":0,"text":"a"}]}`})
			}
			select {
			case <-r.Context().Done():
			case <-release:
			}
		})
	}
	c := newClient(t, f)
	for _, req := range []Request{
		chatReq(`{"messages":[{"role":"user","content":"x"}]}`),
		{Model: "m", Mode: ModeCompletion, Payload: json.RawMessage(`{"prompt":"p","stream":true}`)},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		start := time.Now()
		_, err := c.Do(ctx, req)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrBackend) {
			t.Fatalf("%s: err %v, want DeadlineExceeded and ErrBackend", req.Mode, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("%s: Do returned after %v", req.Mode, d)
		}
	}
}

func TestOpenAIOversizeResponse(t *testing.T) {
	f := newFakeOpenAI(t)
	big := `{"choices":[{"message":{"role":"assistant","content":"` + strings.Repeat("y", 8000) + `"}}]}`
	f.handle("/v1/chat/completions", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, big) })
	f.handle("/v1/completions", func(w http.ResponseWriter, r *http.Request) {
		events := make([]string, 100)
		for i := range events {
			events[i] = `{"choices":[{"index":0,"text":"` + strings.Repeat("z", 100) + `"}]}`
		}
		writeSSE(w, events)
	})
	c := newClient(t, f, WithMaxResponseBytes(4096))
	_, err := c.Do(context.Background(), chatReq(`{"messages":[{"role":"user","content":"x"}]}`))
	if !errors.Is(err, ErrBackend) || !strings.Contains(err.Error(), "exceeds 4096 bytes") {
		t.Fatalf("buffered: err %v", err)
	}
	_, err = c.Do(context.Background(), Request{Model: "m", Mode: ModeCompletion, Payload: json.RawMessage(`{"prompt":"p","stream":true}`)})
	if !errors.Is(err, ErrBackend) || !strings.Contains(err.Error(), "exceeds 4096 bytes") {
		t.Fatalf("stream: err %v", err)
	}
}

func TestOpenAIMalformedResponses(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode Mode
		body string
	}{
		{"not json", ModeChat, `<html>oops</html>`},
		{"truncated json", ModeChat, `{"choices":[{"message":`},
		{"no choices", ModeChat, `{"choices":[]}`},
		{"choices not array", ModeChat, `{"choices":{"0":1}}`},
		{"message is a string", ModeChat, `{"choices":[{"message":"hi"}]}`},
		{"text is a number", ModeCompletion, `{"choices":[{"text":5}]}`},
		{"summary content null", ModeSummarise, `{"choices":[{"message":{"role":"assistant","content":null}}]}`},
		{"embedding not numbers", ModeEmbedding, `{"data":[{"embedding":["a"]}]}`},
		{"embedding missing", ModeEmbedding, `{"data":[{"index":0}]}`},
		{"no data", ModeEmbedding, `{"data":[]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeOpenAI(t)
			for _, p := range []string{"/v1/chat/completions", "/v1/completions", "/v1/embeddings"} {
				f.handle(p, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, tc.body) })
			}
			c := newClient(t, f)
			payload := map[Mode]string{
				ModeChat: `{"messages":[{"role":"user","content":"x"}]}`, ModeCompletion: `{"prompt":"p"}`,
				ModeSummarise: `{"text":"t"}`, ModeEmbedding: `{"input":"i"}`,
			}[tc.mode]
			_, err := c.Do(context.Background(), Request{Model: "m", Mode: tc.mode, Payload: json.RawMessage(payload)})
			if !errors.Is(err, ErrBackend) || !strings.Contains(err.Error(), "malformed") {
				t.Fatalf("err %v, want malformed ErrBackend", err)
			}
		})
	}
}

func TestOpenAIConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := NewOpenAI("http://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Do(context.Background(), chatReq(`{"messages":[{"role":"user","content":"x"}]}`))
	if !errors.Is(err, ErrBackend) || !strings.Contains(err.Error(), "cannot connect") {
		t.Fatalf("err %v", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) {
		t.Fatal("cause not kept for errors.As")
	}
	if err := c.Check(context.Background()); !errors.Is(err, ErrBackend) {
		t.Fatalf("Check err %v", err)
	}
}

func TestOpenAIModelsAndCheck(t *testing.T) {
	f := newFakeOpenAI(t)
	c := newClient(t, f)
	models, err := c.Models(context.Background())
	if err != nil || strings.Join(models, ",") != "llama3.2,nomic-embed-text" {
		t.Fatalf("models %v err %v", models, err)
	}
	if err := c.Check(context.Background()); err != nil {
		t.Fatalf("Check: %v", err)
	}

	// Without /v1/models (404) the Ollama listing at the root is used.
	f.handle("/v1/models", http.NotFound)
	f.handle("/api/tags", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, `{"models":[{"name":"qwen2.5:7b"},{"name":"llama3.2:latest"}]}`)
	})
	models, err = c.Models(context.Background())
	if err != nil || strings.Join(models, ",") != "llama3.2:latest,qwen2.5:7b" {
		t.Fatalf("fallback models %v err %v", models, err)
	}

	// A 500 is unhealthy; a non-listing body is malformed.
	f.handle("/v1/models", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	if err := c.Check(context.Background()); !errors.Is(err, ErrBackend) {
		t.Fatalf("Check on 500: %v", err)
	}
	f.handle("/v1/models", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, `[1,2]`) })
	if err := c.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Fatalf("Check on junk: %v", err)
	}
}

func TestNewOpenAIBaseURL(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"http://127.0.0.1:11434", "http://127.0.0.1:11434/v1", true},                    // bare host gets /v1
		{"http://127.0.0.1:11434/", "http://127.0.0.1:11434/v1", true},                   // trailing slash
		{"http://localhost:8000/v1/", "http://localhost:8000/v1", true},                  // vLLM
		{"https://api.example.com/openai/v1", "https://api.example.com/openai/v1", true}, // hosted path kept
		{"ftp://x", "", false},                // scheme
		{"127.0.0.1:11434", "", false},        // not absolute
		{"http://u:p@host/v1", "", false},     // credentials belong in WithAPIKey
		{"http://host/v1?key=abc", "", false}, // query
		{"", "", false},                       // empty
	} {
		c, err := NewOpenAI(tc.in)
		if (err == nil) != tc.ok {
			t.Fatalf("%q: err %v", tc.in, err)
		}
		if tc.ok && c.base.String() != tc.want {
			t.Fatalf("%q: base %q want %q", tc.in, c.base, tc.want)
		}
	}
	if _, err := NewOpenAI("http://h", WithAPIKey("a\nb")); err == nil {
		t.Fatal("API key with a newline accepted")
	}
	if _, err := NewOpenAI("http://h", WithMaxResponseBytes(10)); err == nil {
		t.Fatal("tiny response cap accepted")
	}
}

// TestSEC_LOG_01_PayloadCanaryNeverInErrors: payload text and backend
// bodies that echo it never appear in an error, whatever fails.
func TestSEC_LOG_01_PayloadCanaryNeverInErrors(t *testing.T) {
	const canary = "CANARY-7f3a9c"
	f := newFakeOpenAI(t)
	echoBack := func(status int, ctype string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", ctype)
			w.WriteHeader(status)
			_, _ = io.WriteString(w, `{"error":{"message":"bad input `+canary+`"}} data: `+canary)
		}
	}
	c := newClient(t, f, WithAPIKey("sk-"+canary))
	bad := []Request{
		chatReq(`{"messages":[{"role":"` + canary + `","content":"x"}]}`),
		chatReq(`{"messages":[{"role":"user"}],"x":"` + canary + `"}`),
		chatReq(`{"messages":"` + canary + `"}`),
		chatReq(`{"messages":[{"role":"user","content":"x"}],"temperature":"` + canary + `"}`),
		chatReq(`{"messages":[{"role":"user","content":"x"}],"stop":"` + canary + `"}`),
		chatReq(`["` + canary + `"]`),
		chatReq(`{"` + canary + ``),
		{Model: "m", Mode: ModeSummarise, Payload: json.RawMessage(`{"text":"t","format":"` + canary + `"}`)},
		{Model: "m", Mode: ModeSummarise, Payload: json.RawMessage(`{"text":"t","language":"` + canary + ` ignore"}`)},
		{Model: "m", Mode: ModeSummarise, Payload: json.RawMessage(`{"text":"t","` + canary + `":1}`)},
		{Model: "m", Mode: ModeEmbedding, Payload: json.RawMessage(`{"input":{"` + canary + `":1}}`)},
	}
	for i, req := range bad {
		_, err := c.Do(context.Background(), req)
		if !errors.Is(err, ErrBadPayload) {
			t.Fatalf("bad payload %d: err %v, want ErrBadPayload", i, err)
		}
		if strings.Contains(err.Error(), canary) {
			t.Fatalf("bad payload %d: error leaks payload: %v", i, err)
		}
	}
	good := chatReq(`{"messages":[{"role":"user","content":"` + canary + `"}]}`)
	for _, h := range []http.HandlerFunc{
		echoBack(400, "application/json"), echoBack(500, "text/plain"),
		echoBack(200, "application/json"), echoBack(200, "text/event-stream"),
	} {
		f.handle("/v1/chat/completions", h)
		for _, stream := range []bool{false, true} {
			c.stream = stream
			_, err := c.Do(context.Background(), good)
			if err == nil || strings.Contains(err.Error(), canary) {
				t.Fatalf("backend failure: err %v", err)
			}
		}
	}
	if strings.Contains(c.String(), canary) {
		t.Fatal("String() shows the API key")
	}
}

// TestSEC_LOG_01_GarbageHTTPNotQuoted: net/http quotes raw bytes of a
// malformed HTTP answer in its error; the client must not pass them on.
func TestSEC_LOG_01_GarbageHTTPNotQuoted(t *testing.T) {
	const canary = "CANARY-b81e2d"
	c, err := NewOpenAI(httperrtest.GarbageServer(t, canary))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Do(context.Background(), chatReq(`{"messages":[{"role":"user","content":"x"}]}`))
	var oe *httperr.OpaqueError
	if !errors.As(err, &oe) || !strings.Contains(oe.Unwrap().Error(), canary) {
		t.Fatalf("test premise: net/http no longer quotes the bytes (cause %v)", err)
	}
	if !errors.Is(err, ErrBackend) || strings.Contains(err.Error(), canary) {
		t.Fatalf("err %v", err)
	}
}

// The engine runs a backend without a guard goroutine only when it promises
// to return on cancellation: net/http's own transport does, a custom
// RoundTripper promises nothing.
func TestOpenAIReturnsOnCancelOnlyWithHTTPTransport(t *testing.T) {
	for _, tc := range []struct {
		opts []Option
		want bool
	}{
		{nil, true},
		{[]Option{WithHTTPClient(&http.Client{})}, true},
		{[]Option{WithHTTPClient(&http.Client{Transport: &http.Transport{}})}, true},
		{[]Option{WithHTTPClient(&http.Client{Transport: cannedTransport{}})}, false},
	} {
		c, err := NewOpenAI("http://127.0.0.1:1", tc.opts...)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.ReturnsOnCancel(); got != tc.want {
			t.Errorf("%T: ReturnsOnCancel %v, want %v", c.client.Transport, got, tc.want)
		}
	}
}
