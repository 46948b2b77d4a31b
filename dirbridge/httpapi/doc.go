// Package httpapi is the node's spec HTTP surface (iicp-core.md §3, §6, §8):
//
//	POST    /v1/task       a CALL in, a RESPONSE out. Body application/json or
//	                       application/iicp+cbor (iicp-cbor-wire.md §2: a CBOR
//	                       request gets a CBOR answer unless Accept excludes it).
//	                       Credentials: body auth.node_token, or
//	                       "Authorization: Bearer <node_token>", or the
//	                       X-IICP-Consumer-Token header (errata v1.5.2).
//	                       Status 200 on success, else the error code's status
//	                       (401, 409, 422, 429 + Retry-After, 502, 504, …) with
//	                       the RESPONSE as body (error and top-level code set).
//	OPTIONS /v1/task       CORS preflight (any origin; iicp-core.md §3.1 note).
//	POST    /v1/control    cancel a streamed task: {"action":"cancel","task_id",
//	                       "reason"}, the same credentials; 200 with the task's
//	                       terminal event (control.go).
//	GET     /iicp/health   {"status":"ok"|"degraded","load","active_jobs",
//	                       "models","intents",…} (NODE-HEALTH-01..03).
//	GET     /metrics       Prometheus text exposition (METRICS-01/03/04).
//	GET     /healthz       process liveness: {"status":"ok"}.
//
// Every other outcome is the error envelope {"error":{"code","message"},"code"}
// with the code's status, including 404, 405, 413, 415 and a recovered
// panic (500). Responses carry X-Request-Id and X-IICP-Trace-Id (the CALL's
// trace.trace_id, else the X-IICP-Trace-Id or W3C traceparent request
// header, else a fresh one).
//
// A JSON CALL that requires the service-lifecycle profile
// (constraints.required_profiles) is answered with 200 text/event-stream:
// one server-sent event per lifecycle event (accepted, partial…, and the
// terminal RESPONSE), partials sealed with IICP-CX like results; the same
// CALL with Last-Event-ID resumes it, closing the connection leaves it
// running for the engine's resume grace (stream.go). PostTaskStream,
// ResumeTaskStream and CancelTask are the client side.
//
// POST /v1/task is rate limited per request Origin and per source IP
// (iicp-core.md §3.1 "Per-origin rate-limit"); loopback callers are exempt
// from the per-IP limit only. TLS 1.3 is the only protocol (SEC-TLS-01);
// plaintext needs an explicit dev option and a loopback listen address.
//
// The package does framing only: the rules (auth, idempotency, admission,
// deadlines) live in the engine, reached through the TaskEngine interface
// declared here. httpapi imports wire and never imports node.
package httpapi
