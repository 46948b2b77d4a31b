// Package node owns the task engine: authorization (node token, consumer
// tokens, peer allowlist, open mode), validation, idempotency, admission
// (max_concurrent, bounded qos wait, priority hand-over), deadlines,
// backend execution with panic containment, and task metrics. Every
// transport (HTTP bridge, libp2p stream, native TCP) hands the engine a
// decoded wire.Call and a wire.Caller and gets a wire.Response back, so the
// rules live once:
//
//	Execute(ctx, *wire.Call, wire.Caller) *wire.Response  // never nil
//	ExecuteStream(ctx, call, caller, emit) *wire.Response // service-lifecycle profile
//	ResumeStream(ctx, call, caller, after, emit) *wire.Response
//	Cancel(ctx, *wire.CancelControl, auth, caller) *wire.Response
//
// ExecuteStream applies the same rules and reports accepted (the slot is
// held), one partial per chunk the backend produces (node/backend.Sink)
// and exactly one terminal event on the returned RESPONSE; Execute refuses
// a CALL that requires the profile (unsupported_profile). Streamed tasks
// keep a bounded event log (tasks.go): ResumeStream replays it after a
// sequence, the same CALL sent again follows the task instead of running
// it twice, Cancel stops it (or answers its outcome once it has ended),
// and a caller whose stream broke (wire.ErrCallerLost) leaves it running
// for a resume grace.
//
// On failure Response.Status is "error" or "timeout", Result is null and
// Error carries the IICP code; the HTTP status is Response.Error.Status().
// The order of checks is: authorize (401) → validate (422) → iicp_conf
// unopened (IICP-E050) → resolve intent/model (unknown_intent, IICP-E029) →
// reserve task_id (409) → admission (429 capacity_exceeded) → backend under
// the timeout_ms deadline (504 task_timeout, 502 backend_error, 422 for a
// payload the intent cannot take).
//
// node may import wire, node/backend and the Prometheus client. It must not
// import net/http servers, dirbridge, mesh or libp2p: transports depend on
// the engine through interfaces they declare, never the reverse.
package node
