package mcp

import (
	"embed"
	"encoding/json"

	"github.com/meshnode/meshnode/wire"
)

// The input schemas of the registered LLM intents, as the intent registry
// publishes them (registry/schemas/llm-*-v1-input.json, minus $schema and
// $id): an MCP client shows them and validates arguments against them.
//
//go:embed schemas/*.json
var schemaFS embed.FS

// known describes the registered intents a tool can stand for.
var known = map[string]struct{ title, desc, schema string }{
	wire.IntentChat: {"Chat (IICP mesh)",
		"Chat completion on the best mesh node serving urn:iicp:intent:llm:chat:v1. Arguments: an OpenAI-style messages array, optional max_tokens, temperature, stop.",
		"llm-chat-v1-input.json"},
	wire.IntentCompletion: {"Text completion (IICP mesh)",
		"Text completion on the best mesh node serving urn:iicp:intent:llm:completion:v1. Arguments: prompt, optional max_tokens, temperature.",
		"llm-completion-v1-input.json"},
	wire.IntentEmbedding: {"Embeddings (IICP mesh)",
		"Embedding vectors from the best mesh node serving urn:iicp:intent:llm:embedding:v1. Arguments: input (a string or an array of strings).",
		"llm-embedding-v1-input.json"},
	wire.IntentSummarise: {"Summarise (IICP mesh)",
		"Summary of a text from the best mesh node serving urn:iicp:intent:llm:summarize:v1. Arguments: text, optional max_length, format, language.",
		"llm-summarize-v1-input.json"},
}

// genericSchema is the input schema of an intent without a registered one:
// any object, sent as the task payload.
const genericSchema = `{"type":"object","additionalProperties":true}`

// describe builds the tool for intent.
func describe(name, intent string) Tool {
	t := Tool{Name: name, Intent: intent, InputSchema: json.RawMessage(genericSchema),
		Description: "Runs an IICP task with intent " + intent + " on the best mesh node serving it. Arguments are the task payload (a JSON object)."}
	k, ok := known[intent]
	if !ok {
		return t
	}
	t.Title, t.Description = k.title, k.desc
	if b, err := schemaFS.ReadFile("schemas/" + k.schema); err == nil && json.Valid(b) {
		t.InputSchema = json.RawMessage(b)
	}
	return t
}
