// Package backend talks to inference backends: an OpenAI-compatible HTTP
// client (Ollama, vLLM, llama.cpp server, LM Studio, hosted APIs) and the
// built-in echo backend for demos and tests.
//
// # Shape
//
//   - Router maps an intent URN (and an optional pinned model) to a Backend
//     and a Request template: Resolve(intent, model). DefaultRoutes builds
//     chat, completion, summarise and (with an embedding model) embedding
//     routes for one backend; Capabilities feeds REGISTER and adverts.
//   - OpenAI (NewOpenAI) maps each Mode onto the API: chat and summarise →
//     POST {base}/chat/completions, completion → {base}/completions,
//     embedding → {base}/embeddings. Payloads are checked against the
//     registry input schemas (registry/schemas/llm-*-v1-input.json) before
//     any request; results follow the output schemas (OpenAI-shaped
//     choices[] and usage). With stream: true (payload or WithStreaming) the
//     server-sent events are assembled into one buffered result; with a
//     Sink in the context (the engine's streamed tasks, sink.go) every
//     chunk is also handed over, normalised, as it arrives.
//   - Echo (NewEcho) runs no model: model name "meshnode-echo", chat echoes
//     the last user message, token counts are word counts.
//   - Monitor probes every backend's Check on an interval (Serve(ctx) error);
//     DetectOllama finds a local Ollama for `meshnode up`.
//
// # Errors
//
// Every failure wraps one sentinel the engine maps to an IICP code:
// ErrBadPayload (validation_error), ErrUnknownIntent (unknown_intent),
// ErrUnknownModel (IICP-E029), ErrBackend (backend_error, 502). A non-2xx
// backend answer is a *StatusError (wrapping ErrBackend) with the HTTP
// status; a cancelled or expired ctx stays visible to errors.Is
// (context.DeadlineExceeded). Errors name fields, never values: payload
// text, response bodies and the API key never appear in an error
// (SEC-LOG-01), so the engine may log them.
//
// backend may import wire. It must not import node, dirbridge or mesh.
package backend
