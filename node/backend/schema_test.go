package backend

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/meshnode/meshnode/wire"
)

// TestChatOutputMatchesRegistrySchema validates every path that produces an
// llm:chat:v1 result (buffered, streamed, echo) against
// registry/schemas/llm-chat-v1-output.json, read at test time.
func TestChatOutputMatchesRegistrySchema(t *testing.T) {
	schema := registrySchema(t, "llm-chat-v1-output.json")
	f := newFakeOpenAI(t)
	payload := `{"messages":[{"role":"user","content":"hello there"}]}`
	for name, b := range map[string]Backend{
		"buffered": newClient(t, f),
		"streamed": newClient(t, f, WithStreaming(true)),
		"echo":     NewEcho(),
	} {
		t.Run(name, func(t *testing.T) {
			res, err := b.Do(context.Background(), chatReq(payload))
			if err != nil {
				t.Fatal(err)
			}
			if err := validateJSON(t, schema, res.Output); err != nil {
				t.Fatalf("output %s violates schema: %v", res.Output, err)
			}
		})
	}
	// The schema check itself must be able to fail.
	if validateJSON(t, schema, []byte(`{"choices":[{"text":"no message"}]}`)) == nil {
		t.Fatal("schema accepted a choice without message")
	}
}

// TestCompletionAndEmbeddingOutputMatchRegistrySchemas does the same for
// llm:completion:v1 and llm:embedding:v1.
func TestCompletionAndEmbeddingOutputMatchRegistrySchemas(t *testing.T) {
	f := newFakeOpenAI(t)
	c := newClient(t, f)
	for _, tc := range []struct {
		name, schema, payload string
		mode                  Mode
		b                     Backend
	}{
		{"completion", "llm-completion-v1-output.json", `{"prompt":"p"}`, ModeCompletion, c},
		{"completion streamed", "llm-completion-v1-output.json", `{"prompt":"p","stream":true}`, ModeCompletion, c},
		{"completion echo", "llm-completion-v1-output.json", `{"prompt":"p q"}`, ModeCompletion, NewEcho()},
		{"embedding", "llm-embedding-v1-output.json", `{"input":["a","b"]}`, ModeEmbedding, c},
		{"summarise", "generic-json-result-v1.json", `{"text":"t"}`, ModeSummarise, c},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := tc.b.Do(context.Background(), Request{Model: "m", Mode: tc.mode, Payload: json.RawMessage(tc.payload)})
			if err != nil {
				t.Fatal(err)
			}
			if err := validateJSON(t, registrySchema(t, tc.schema), res.Output); err != nil {
				t.Fatalf("output %s violates %s: %v", res.Output, tc.schema, err)
			}
		})
	}
}

// TestRegistryPayloadFixtures runs registry/fixtures/intent-payloads-v1.json
// through the payload mapping: valid cases pass, invalid ones are
// ErrBadPayload, for every intent meshnode routes.
func TestRegistryPayloadFixtures(t *testing.T) {
	raw, err := os.ReadFile(specPath(t, "registry", "fixtures", "intent-payloads-v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fx struct {
		Cases []struct {
			ID      string          `json:"id"`
			Intent  string          `json:"intent"`
			Valid   bool            `json:"valid"`
			Payload json.RawMessage `json:"payload"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatal(err)
	}
	modes := map[string]Mode{wire.IntentChat: ModeChat, wire.IntentCompletion: ModeCompletion,
		wire.IntentEmbedding: ModeEmbedding, wire.IntentSummarise: ModeSummarise}
	ran := 0
	for _, c := range fx.Cases {
		mode, ok := modes[c.Intent]
		if !ok {
			continue
		}
		ran++
		_, err := prepare(Request{Intent: c.Intent, Model: "m", Mode: mode, Payload: c.Payload}, false)
		if c.Valid && err != nil {
			t.Errorf("%s: valid fixture rejected: %v", c.ID, err)
		}
		if !c.Valid && !errors.Is(err, ErrBadPayload) {
			t.Errorf("%s: invalid fixture gave %v, want ErrBadPayload", c.ID, err)
		}
	}
	if ran < 6 {
		t.Fatalf("only %d LLM fixtures found", ran)
	}
}

// TestPayloadValidationAgreesWithInputSchemas checks that the hand-written
// validation accepts exactly what the registry input schemas accept, on
// edge cases of each rule.
func TestPayloadValidationAgreesWithInputSchemas(t *testing.T) {
	cases := []struct {
		schema  string
		mode    Mode
		payload string
	}{
		{"llm-chat-v1-input.json", ModeChat, `{"messages":[{"role":"user","content":"x"}]}`},
		{"llm-chat-v1-input.json", ModeChat, `{"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]}`},
		{"llm-chat-v1-input.json", ModeChat, `{"messages":[{"role":"tool","content":null,"tool_call_id":"1"}]}`},
		{"llm-chat-v1-input.json", ModeChat, `{"messages":[]}`},
		{"llm-chat-v1-input.json", ModeChat, `{"messages":[{"role":"developer","content":"x"}]}`},
		{"llm-chat-v1-input.json", ModeChat, `{"messages":[{"content":"x"}]}`},
		{"llm-chat-v1-input.json", ModeChat, `{"messages":[{"role":"user"}]}`},
		{"llm-chat-v1-input.json", ModeChat, `{"messages":["x"]}`},
		{"llm-chat-v1-input.json", ModeChat, `{"messages":[{"role":"user","content":"x"}],"max_tokens":0}`},
		{"llm-chat-v1-input.json", ModeChat, `{"messages":[{"role":"user","content":"x"}],"max_tokens":1.5}`},
		{"llm-chat-v1-input.json", ModeChat, `{"messages":[{"role":"user","content":"x"}],"max_tokens":16.0}`},
		{"llm-chat-v1-input.json", ModeChat, `{"messages":[{"role":"user","content":"x"}],"max_tokens":"16"}`},
		{"llm-chat-v1-input.json", ModeChat, `{"messages":[{"role":"user","content":"x"}],"temperature":2}`},
		{"llm-chat-v1-input.json", ModeChat, `{"messages":[{"role":"user","content":"x"}],"temperature":2.01}`},
		{"llm-chat-v1-input.json", ModeChat, `{"messages":[{"role":"user","content":"x"}],"temperature":-0.1}`},
		{"llm-chat-v1-input.json", ModeChat, `{"messages":[{"role":"user","content":"x"}],"stop":["a"]}`},
		{"llm-chat-v1-input.json", ModeChat, `{"messages":[{"role":"user","content":"x"}],"stop":"a"}`},
		{"llm-chat-v1-input.json", ModeChat, `{"messages":[{"role":"user","content":"x"}],"stop":[1]}`},
		{"llm-chat-v1-input.json", ModeChat, `{"messages":[{"role":"user","content":"x"}],"extra":{"any":1}}`},
		{"llm-chat-v1-input.json", ModeChat, `[]`},
		{"llm-completion-v1-input.json", ModeCompletion, `{"prompt":""}`},
		{"llm-completion-v1-input.json", ModeCompletion, `{"prompt":["a"]}`},
		{"llm-completion-v1-input.json", ModeCompletion, `{"prompt":"a","temperature":"1"}`},
		{"llm-embedding-v1-input.json", ModeEmbedding, `{"input":""}`},
		{"llm-embedding-v1-input.json", ModeEmbedding, `{"input":["a",""]}`},
		{"llm-embedding-v1-input.json", ModeEmbedding, `{"input":[]}`},
		{"llm-embedding-v1-input.json", ModeEmbedding, `{"input":[1]}`},
		{"llm-embedding-v1-input.json", ModeEmbedding, `{"input":null}`},
		{"llm-summarize-v1-input.json", ModeSummarise, `{"text":"t","max_length":10,"format":"headline","language":"en"}`},
		{"llm-summarize-v1-input.json", ModeSummarise, `{"text":"t","format":"essay"}`},
		{"llm-summarize-v1-input.json", ModeSummarise, `{"text":"t","max_length":0}`},
		{"llm-summarize-v1-input.json", ModeSummarise, `{"text":"t","tone":"dry"}`},
		{"llm-summarize-v1-input.json", ModeSummarise, `{"text":5}`},
		{"llm-summarize-v1-input.json", ModeSummarise, `{}`},
	}
	for _, tc := range cases {
		schemaErr := validateJSON(t, registrySchema(t, tc.schema), []byte(tc.payload))
		_, err := prepare(Request{Model: "m", Mode: tc.mode, Payload: json.RawMessage(tc.payload)}, false)
		if (schemaErr == nil) != (err == nil) {
			t.Errorf("%s %s: schema says valid=%v, prepare says %v", tc.schema, tc.payload, schemaErr == nil, err)
		}
		if err != nil && !errors.Is(err, ErrBadPayload) {
			t.Errorf("%s: error %v is not ErrBadPayload", tc.payload, err)
		}
	}
}
