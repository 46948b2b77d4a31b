package backend

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/meshnode/meshnode/wire"
)

func TestRouterResolve(t *testing.T) {
	echo := NewEcho()
	oa, err := NewOpenAI("http://127.0.0.1:1", WithInferenceEngine("ollama"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRouter(
		Route{Intent: wire.IntentChat, Mode: ModeChat, Backend: oa, Models: []string{"llama3.2", "qwen2.5"}, MaxTokens: 2048},
		Route{Intent: wire.IntentEmbedding, Mode: ModeEmbedding, Backend: oa, DefaultModel: "nomic-embed-text"},
		Route{Intent: wire.IntentCompletion, Mode: ModeCompletion, Backend: echo, Models: []string{"a", "b"}, DefaultModel: "b"},
	)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, intent, model string
		wantModel           string
		wantMode            Mode
		wantMax             int64
		wantErr             error
	}{
		{"default is first model", wire.IntentChat, "", "llama3.2", ModeChat, 2048, nil},
		{"pinned model", wire.IntentChat, "qwen2.5", "qwen2.5", ModeChat, 2048, nil},
		{"explicit default", wire.IntentCompletion, "", "b", ModeCompletion, 0, nil},
		{"default-only route", wire.IntentEmbedding, "", "nomic-embed-text", ModeEmbedding, 0, nil},
		{"unknown model (IICP-E029)", wire.IntentChat, "gpt-9", "", "", 0, ErrUnknownModel},
		{"model of another route", wire.IntentChat, "nomic-embed-text", "", "", 0, ErrUnknownModel},
		{"unknown intent (PROTO-URN-03)", "urn:iicp:intent:llm:rerank:v1", "", "", "", 0, ErrUnknownIntent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, req, err := r.Resolve(tc.intent, tc.model)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err %v want %v", err, tc.wantErr)
			}
			if tc.wantErr != nil {
				return
			}
			if b == nil || req.Model != tc.wantModel || req.Mode != tc.wantMode || req.MaxTokens != tc.wantMax || req.Intent != tc.intent {
				t.Fatalf("got %+v", req)
			}
		})
	}
	caps := r.Capabilities()
	if len(caps) != 3 || caps[0].Intent != wire.IntentChat || caps[0].InferenceEngine != "ollama" ||
		caps[0].MaxTokens != 2048 || !slices.Equal(caps[0].Models, []string{"llama3.2", "qwen2.5"}) {
		t.Fatalf("capabilities %+v", caps)
	}
	if caps[1].Intent != wire.IntentCompletion || caps[1].InferenceEngine != EchoModel {
		t.Fatalf("echo capability %+v", caps[1])
	}
	caps[0].Models[0] = "mutated"
	if r.Capabilities()[0].Models[0] != "llama3.2" {
		t.Fatal("Capabilities exposes router state")
	}
	if got := r.Models(); !slices.Equal(got, []string{"a", "b", "llama3.2", "nomic-embed-text", "qwen2.5"}) {
		t.Fatalf("models %v", got)
	}
	if got := r.Intents(); !slices.Equal(got, []string{wire.IntentChat, wire.IntentCompletion, wire.IntentEmbedding}) {
		t.Fatalf("intents %v", got)
	}
	if got := r.Backends(); len(got) != 2 || got[0] != Backend(oa) || got[1] != Backend(echo) {
		t.Fatalf("backends %v", got)
	}
	if r.BackendName() != "openai+echo" {
		t.Fatalf("backend name %q", r.BackendName())
	}
}

func TestNewRouterRejects(t *testing.T) {
	echo := NewEcho()
	ok := Route{Intent: wire.IntentChat, Mode: ModeChat, Backend: echo, Models: []string{"m"}}
	for _, tc := range []struct {
		name   string
		routes []Route
	}{
		{"no routes", nil},
		{"duplicate intent", []Route{ok, ok}},
		{"not a urn", []Route{{Intent: "chat", Mode: ModeChat, Backend: echo, Models: []string{"m"}}}},
		{"bad mode", []Route{{Intent: wire.IntentChat, Mode: "rerank", Backend: echo, Models: []string{"m"}}}},
		{"nil backend", []Route{{Intent: wire.IntentChat, Mode: ModeChat, Models: []string{"m"}}}},
		{"no model", []Route{{Intent: wire.IntentChat, Mode: ModeChat, Backend: echo, Models: []string{" "}}}},
		{"default not listed", []Route{{Intent: wire.IntentChat, Mode: ModeChat, Backend: echo, Models: []string{"m"}, DefaultModel: "x"}}},
		{"negative max", []Route{{Intent: wire.IntentChat, Mode: ModeChat, Backend: echo, Models: []string{"m"}, MaxTokens: -1}}},
	} {
		if _, err := NewRouter(tc.routes...); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

func TestRouterDo(t *testing.T) {
	r, err := NewRouter(DefaultRoutes(NewEcho(), DefaultConfig{MaxTokens: 512})...)
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Do(context.Background(), wire.IntentChat, "", json.RawMessage(`{"messages":[{"role":"user","content":"ping"}]}`))
	if err != nil || res.Model != EchoModel {
		t.Fatalf("res %+v err %v", res, err)
	}
	if _, err := r.Do(context.Background(), wire.IntentChat, "llama3.2", nil); !errors.Is(err, ErrUnknownModel) {
		t.Fatalf("err %v", err)
	}
}

func TestDefaultRoutes(t *testing.T) {
	// Echo without models serves chat, completion and summarise as meshnode-echo.
	er, err := NewRouter(DefaultRoutes(NewEcho(), DefaultConfig{})...)
	if err != nil {
		t.Fatal(err)
	}
	if got := er.Intents(); !slices.Equal(got, []string{wire.IntentChat, wire.IntentCompletion, wire.IntentSummarise}) {
		t.Fatalf("echo intents %v", got)
	}
	if got := er.Models(); !slices.Equal(got, []string{EchoModel}) {
		t.Fatalf("echo models %v", got)
	}
	// max_tokens is a MUST of an LLM capability: the default applies.
	if c := er.Capabilities()[0]; c.MaxTokens != DefaultMaxTokens {
		t.Fatalf("capability %+v", c)
	}

	oa, _ := NewOpenAI("http://127.0.0.1:1")
	chat, embed := SplitEmbeddingModels([]string{"llama3.2:latest", "nomic-embed-text:latest", "qwen2.5:7b", "all-minilm", "bge-m3"})
	if !slices.Equal(chat, []string{"llama3.2:latest", "qwen2.5:7b"}) || !slices.Equal(embed, []string{"nomic-embed-text:latest", "all-minilm", "bge-m3"}) {
		t.Fatalf("split %v %v", chat, embed)
	}
	r, err := NewRouter(DefaultRoutes(oa, DefaultConfig{ChatModels: chat, EmbeddingModels: embed, MaxTokens: 4096})...)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Intents()) != 4 {
		t.Fatalf("intents %v", r.Intents())
	}
	if _, req, _ := r.Resolve(wire.IntentEmbedding, ""); req.Model != "nomic-embed-text:latest" || req.MaxTokens != 0 {
		t.Fatalf("embedding route %+v", req)
	}
	if _, req, _ := r.Resolve(wire.IntentSummarise, ""); req.Model != "llama3.2:latest" || req.Mode != ModeSummarise || req.MaxTokens != 4096 {
		t.Fatalf("summarise route %+v", req)
	}
	// An OpenAI backend with no models configured yields no routes (and
	// NewRouter refuses the empty set) rather than a route with no model.
	if rs := DefaultRoutes(oa, DefaultConfig{}); len(rs) != 0 {
		t.Fatalf("routes %v", rs)
	}
}

// valueBackend is a non-comparable backend type (a value holding a slice).
type valueBackend struct {
	tags []string
}

func (v valueBackend) Name() string                    { return "value" }
func (v valueBackend) Check(ctx context.Context) error { return nil }
func (v valueBackend) Do(ctx context.Context, req Request) (Result, error) {
	return NewEcho().Do(ctx, req)
}

func TestRouterNonComparableBackend(t *testing.T) {
	vb := valueBackend{tags: []string{"x"}}
	r, err := NewRouter(
		Route{Intent: wire.IntentChat, Mode: ModeChat, Backend: vb, Models: []string{"m"}},
		Route{Intent: wire.IntentCompletion, Mode: ModeCompletion, Backend: vb, Models: []string{"m"}},
	)
	if err != nil {
		t.Fatal(err)
	}
	// Must not panic; non-comparable values are listed per route.
	if got := len(r.Backends()); got != 2 {
		t.Fatalf("backends %d", got)
	}
	m, err := NewMonitor(r.Backends())
	if err != nil {
		t.Fatal(err)
	}
	if m.HealthyBackend(vb) {
		t.Fatal("unprobed backend healthy")
	}
}
