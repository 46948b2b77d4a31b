// Package backend talks to inference backends: an OpenAI-compatible HTTP
// client (Ollama, vLLM, llama.cpp server, LM Studio, hosted APIs) and the
// built-in echo backend for demos and tests.
//
// backend may import wire. It must not import node, dirbridge or mesh.
package backend
