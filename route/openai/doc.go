// Package openai is the OpenAI-compatible door of a node: the API agent
// tools already speak (the official OpenAI SDKs, LangChain, Open WebUI,
// curl), answered by the mesh.
//
//	POST /v1/chat/completions   → urn:iicp:intent:llm:chat:v1
//	POST /v1/completions        → urn:iicp:intent:llm:completion:v1
//	POST /v1/embeddings         → urn:iicp:intent:llm:embedding:v1
//	GET  /v1/models             → the models the known nodes offer
//
// Every request becomes one IICP CALL run by a route.Router: this node's
// own engine, a mesh peer or a directory-listed node over HTTP (sealed with
// IICP-CX), whichever the router ranks best. The request's `model` pins
// the model ("" or "auto" leaves the choice to the router). With
// "stream": true the CALL negotiates the service-lifecycle profile and the
// tokens are written as OpenAI `data:` chunks while the serving node's
// backend generates them, ending with `data: [DONE]`.
//
// Errors have OpenAI's shape, {"error":{"message","type","code","param"}},
// with the IICP code in `code`; when every candidate node is saturated the
// answer is 429 with Retry-After.
//
// The server listens on loopback by default; any other address requires
// an API key (Authorization: Bearer <key>), checked in constant time and
// never logged. Prompts and answers are never logged either.
//
// openai imports route and wire; never internal/daemon.
package openai
