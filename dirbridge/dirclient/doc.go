// Package dirclient is the node side of IICP-DIR (iicp-dir.md, iicp-core.md
// §2, §4, §11): the HTTP calls a node makes to a directory, and Session, the
// long-running service that keeps one registration alive.
//
// The protocol, as this package speaks it (JSON over HTTPS; plaintext only
// in dev mode):
//
//	POST /v1/register        REGISTER → 201 ACK {node_id, node_token, expires_at,
//	                         directory, observed_source_ip, next_heartbeat_ms}
//	                         A refresh carries current_node_token and returns a
//	                         replacement token; the old one stops working
//	                         (DIR-LIFECYCLE-03/04).
//	POST /v1/heartbeat       Authorization: Bearer <node_token>; HEARTBEAT
//	                         {node_id, load, active_jobs, available} → 200 PONG
//	                         {ok, next_heartbeat_ms}. 401: token invalid;
//	                         404: node unknown (DIR-HB-02/03).
//	POST /v1/deregister      Authorization: Bearer <node_token>; {node_id} →
//	                         200 {deregistered: true} (DIR-LIFECYCLE-06).
//	GET  /v1/discover        ?intent=&qos=&region=&limit= → NODELIST, best first.
//	GET  /v1/me              Authorization: Bearer; → {node_id,
//	                         observed_source_ip, endpoint} (DIR-ADDR-04).
//	GET  /v1/bootstrap       ?limit= → {peers:[{node_id, endpoint, region,
//	                         last_seen}], count} (iicp-dir.md §3.5).
//
// Errors arrive as the IICP envelope {"error":{"code","message"}} and come
// back from every call as *Error, which carries the HTTP status, the IICP
// code and any Retry-After; errors.Is matches ErrUnauthorized, ErrNotFound,
// ErrRateLimited, ErrUnavailable and ErrRejected for branching.
//
// Session runs the lifecycle: register on start (with the saved token as
// current_node_token, so a restart rotates rather than orphans it), persist
// only accepted tokens (fixtures/profiles/e050-client-credential-lifecycle-v1.json),
// heartbeat at the directory's next_heartbeat_ms, re-register on 401/404,
// rotate the token on a timer, honour Retry-After with jitter, back off with
// jitter while the directory is down (the node keeps serving), warn when the
// observed source IP differs from the endpoint host (iicp-core.md §11.2) and
// deregister on shutdown.
//
// PostTask is one attempt of the consumer side of POST /v1/task (route's
// HTTPTransport runs the attempt loop over it). Payloads are sealed with
// IICP-CX (cx) to every node that advertises a cx_public_key; a
// keyless node gets plaintext only when the caller explicitly allows it
// (iicp-confidentiality.md §6). Answers are read in every dialect deployed
// SDK nodes speak (internal/interop.DecodeTaskAnswer: "completed",
// IICP-E021, nested or top-level codes, HTML error pages, 504 as timeout),
// and the CALL carries the qos_class mirror they read. ConsumerToken asks a
// directory for the per-target token (iicp-dir.md §3.12).
//
// Tokens are credentials: they never appear in logs, errors or Status.
//
// client imports wire, cx and internal/interop (two leaf packages
// that import only wire and internal/paths) and the standard library; it
// must not import node, mesh, httpapi or cmd.
package dirclient
