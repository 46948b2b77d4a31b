package backend

import (
	"context"
	"encoding/json"
	"errors"
)

// Request is one inference request derived from a CALL. Payload is the CALL's
// payload object, passed through; it must never be logged or put in an error.
type Request struct {
	Intent    string
	Model     string // resolved model name; never empty after Router.Resolve
	Payload   json.RawMessage
	MaxTokens int64 // 0 = backend default
	// Mode says how Payload maps onto the backend API.
	Mode Mode
	// TraceID is the CALL's trace.trace_id; OpenAI-compatible backends get
	// it as the X-IICP-Trace-Id header (iicp-semantics.md §10.1).
	TraceID string
}

// HeaderTraceID is the trace header sent to OpenAI-compatible backends.
const HeaderTraceID = "X-IICP-Trace-Id"

// Result is what a backend produced for a Request.
type Result struct {
	// Output becomes the RESPONSE `result` object. For llm:chat:v1 it follows
	// registry/schemas/llm-chat-v1-output.json (OpenAI-shaped choices[].message).
	Output     json.RawMessage
	Model      string // the model that actually ran (RESPONSE model_used)
	TokensUsed int64
}

// Mode is how an intent is served by an OpenAI-compatible API.
type Mode string

const (
	ModeChat       Mode = "chat"       // POST /v1/chat/completions
	ModeCompletion Mode = "completion" // POST /v1/completions
	ModeEmbedding  Mode = "embedding"  // POST /v1/embeddings
	ModeSummarise  Mode = "summarise"  // chat completions with a summarise system prompt
)

// Backend runs inference. Implementations must honour ctx cancellation (the
// engine cancels on the task deadline) and must not put payload text or
// backend response bodies in returned errors.
type Backend interface {
	// Name identifies the backend kind in health output ("openai", "echo").
	Name() string
	// Do runs one request.
	Do(ctx context.Context, req Request) (Result, error)
	// Check probes backend health (cheap; e.g. GET /v1/models).
	Check(ctx context.Context) error
}

// Sentinel errors the engine maps to IICP codes.
var (
	// ErrUnknownIntent: no route serves the intent (PROTO-URN-03 unknown_intent).
	ErrUnknownIntent = errors.New("intent not served")
	// ErrUnknownModel: the intent is served but not with that model (IICP-E029).
	ErrUnknownModel = errors.New("model not served")
	// ErrBadPayload: the payload does not fit the intent's input shape (422).
	ErrBadPayload = errors.New("payload does not match intent input")
	// ErrBackend: the backend failed; details stay in the backend (502).
	ErrBackend = errors.New("backend failed")
)
